// Tests of tb-host.mjs under Node: `node --test tcg/wasm32/js/` (run by `cargo xtask test-wasm`).
//
// The "emulator" here is a hand-assembled module with what the real one has: an exported memory, an
// exported growable funcref table, and a way to call a table slot as a TB (`call(slot, env, out)` does a
// call_indirect of type (i32, i32) -> i32, as Rust calls a fn pointer). The TB module imports
// env.memory and env.table and exports tb0 (stores 42 at `out`, exit kind 0) and tb1 (exit kind 1).

import test from "node:test";
import assert from "node:assert/strict";
import { createTbHost, TAIL_CALLS } from "./tb-host.mjs";

const str = (s) => [s.length, ...new TextEncoder().encode(s)];
const section = (id, bytes) => [id, bytes.length, ...bytes]; // every section here is < 128 bytes
const vec = (items) => [items.length, ...items.flat()];
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const I32 = 0x7f;
const TB_TYPE = [0x60, 2, I32, I32, 1, I32];

const EMULATOR = new Uint8Array([
  ...HEADER,
  ...section(1, vec([TB_TYPE, [0x60, 3, I32, I32, I32, 1, I32]])),
  ...section(3, vec([[1]])),
  ...section(4, vec([[0x70, 0x00, 1]])), // funcref table, min 1, no max: growable
  ...section(5, vec([[0x00, 1]])), // one page
  ...section(7, vec([[...str("memory"), 2, 0], [...str("__indirect_function_table"), 1, 0], [...str("call"), 0, 0]])),
  // call(slot, env, out) = call_indirect (type 0) env out slot
  ...section(10, vec([[11, 0, 0x20, 1, 0x20, 2, 0x20, 0, 0x11, 0, 0, 0x0b]])),
]);

const TB_MODULE = new Uint8Array([
  ...HEADER,
  ...section(1, vec([TB_TYPE])),
  ...section(2, vec([[...str("env"), ...str("memory"), 2, 0x00, 1], [...str("env"), ...str("table"), 1, 0x70, 0x00, 0]])),
  ...section(3, vec([[0], [0]])),
  ...section(7, vec([[...str("tb0"), 0, 0], [...str("tb1"), 0, 1]])),
  ...section(
    10,
    vec([
      [11, 0, 0x20, 1, 0x42, 42, 0x37, 3, 0, 0x41, 0, 0x0b], // i64.store [out] 42; return 0
      [4, 0, 0x41, 1, 0x0b], // return 1
    ]),
  ),
]);

/** An emulator stub with a TB host attached, and helpers to pass bytes through its memory. */
function setup(options) {
  const host = createTbHost(options);
  const emu = new WebAssembly.Instance(new WebAssembly.Module(EMULATOR), host.imports).exports;
  host.attach(emu);
  const mem = () => new Uint8Array(emu.memory.buffer);
  const BYTES = 1024;
  const OUT = 64;
  const { rqemu_tb } = host.imports;
  const load = (bytes, nexports) => {
    mem().set(bytes, BYTES);
    return rqemu_tb.instantiate(BYTES, bytes.length, nexports, OUT);
  };
  const slots = (n) => [...new Uint32Array(emu.memory.buffer, OUT, n)];
  return { host, emu, mem, load, slots, rqemu_tb };
}

test("instantiate places the exports in the table and they run against the emulator's memory", () => {
  const { host, emu, load, slots } = setup();
  const handle = load(TB_MODULE, 2);
  assert.ok(handle > 0);
  const [s0, s1] = slots(2);
  assert.notEqual(s0, s1);
  assert.equal(emu.call(s0, 0, 512), 0);
  assert.equal(new DataView(emu.memory.buffer).getBigUint64(512, true), 42n);
  assert.equal(emu.call(s1, 0, 512), 1);
  const st = host.stats();
  assert.equal(st.live, 1);
  assert.equal(st.instantiated, 1);
  assert.equal(st.bytesCompiled, TB_MODULE.length);
  assert.ok(st.compileMs >= 0);
});

test("release nulls the slots, and the next module reuses them instead of growing the table", () => {
  const { host, emu, load, slots, rqemu_tb } = setup();
  const h = load(TB_MODULE, 2);
  const first = slots(2);
  const size = host.stats().tableSize;
  rqemu_tb.release(h);
  assert.throws(() => emu.call(first[0], 0, 512), WebAssembly.RuntimeError);
  assert.equal(host.stats().live, 0);
  assert.equal(host.stats().freeSlots, 256, "the two freed slots and the rest of the chunk");
  load(TB_MODULE, 2);
  assert.deepEqual(slots(2).sort(), first.sort());
  assert.equal(host.stats().tableSize, size);
  assert.equal(host.stats().tableGrown, 256, "the table grows in chunks");
  rqemu_tb.release(h); // twice: ignored
  assert.equal(host.stats().live, 1);
});

// Imports `fn.<slot>` (i32, i32) -> i32 and exports tb0 calling it: the emulator's `call` function is at
// no slot yet, so the test places one TB's export in the table first and imports it by slot number.
const importing = (slot) =>
  new Uint8Array([
    ...HEADER,
    ...section(1, vec([TB_TYPE])),
    ...section(2, vec([[...str("fn"), ...str(String(slot)), 0, 0]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...str("tb0"), 0, 1]])),
    ...section(10, vec([[8, 0, 0x20, 0, 0x20, 1, 0x10, 0, 0x0b]])), // tb0(env, out) = fn(env, out)
  ]);

test("functions imported by table slot are resolved from the emulator's table", () => {
  const { emu, load, slots } = setup();
  assert.ok(load(TB_MODULE, 2) > 0);
  const [, s1] = slots(2);
  assert.ok(load(importing(s1), 1) > 0);
  assert.equal(emu.call(slots(1)[0], 0, 512), 1, "tb0 forwarded to the imported tb1");
  assert.equal(load(importing(999999), 1), -1);
});

// A module whose tb0 returns `v`.
const returning = (v) =>
  new Uint8Array([
    ...HEADER,
    ...section(1, vec([TB_TYPE])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...str("tb0"), 0, 0]])),
    ...section(10, vec([[4, 0, 0x41, v, 0x0b]])), // return v (v < 64)
  ]);

test("a slot freed and filled again is resolved afresh, not from the cache", () => {
  const { emu, load, slots, rqemu_tb } = setup();
  const h = load(returning(5), 1);
  const [s] = slots(1);
  assert.ok(load(importing(s), 1) > 0);
  assert.equal(emu.call(slots(1)[0], 0, 512), 5);
  rqemu_tb.release(h);
  assert.ok(load(returning(7), 1) > 0);
  assert.equal(slots(1)[0], s, "the freed slot is reused");
  assert.ok(load(importing(s), 1) > 0);
  assert.equal(emu.call(slots(1)[0], 0, 512), 7);
});

test("a module that does not compile or lacks an export fails with a message", () => {
  const { host, load, mem, rqemu_tb } = setup();
  assert.equal(load(new Uint8Array([0, 0x61, 0x73, 0x6d, 9, 9]), 1), -1);
  const len = rqemu_tb.last_error(2048, 256);
  const message = new TextDecoder().decode(mem().subarray(2048, 2048 + Math.min(len, 256)));
  assert.match(message, /CompileError/);
  assert.equal(load(TB_MODULE, 3), -1);
  assert.equal(rqemu_tb.last_error(2048, 4), "tb-host: the module has no function export tb2".length);
  assert.equal(host.stats().failed, 2);
  assert.equal(host.stats().live, 0);
});

test("maxInstances is a hard cap; flush releases everything", () => {
  const { host, load, rqemu_tb } = setup({ maxInstances: 2 });
  assert.ok(load(TB_MODULE, 1) > 0);
  assert.ok(load(TB_MODULE, 1) > 0);
  assert.equal(load(TB_MODULE, 1), -1);
  rqemu_tb.flush();
  assert.equal(host.stats().live, 0);
  assert.equal(host.stats().released, 2);
  assert.ok(load(TB_MODULE, 1) > 0);
});

test("instantiate before attach fails instead of throwing", () => {
  const host = createTbHost();
  assert.equal(host.imports.rqemu_tb.instantiate(0, 0, 0, 0), -1);
});

test("tail-call detection answers consistently", () => {
  const { rqemu_tb } = setup();
  assert.equal(rqemu_tb.tail_calls_supported(), TAIL_CALLS ? 1 : 0);
  // Node 20's V8 ships tail calls; a failure here means the probe module is wrong, not the engine.
  if (Number(process.versions.node.split(".")[0]) >= 20) assert.equal(TAIL_CALLS, true);
});
