// tb-host.mjs: the JavaScript side of rqemu's wasm32 backend (Node and browsers, no dependencies).
//
// The emulator (a plain wasm32-unknown-unknown module, linked with `--export-table --growable-table`)
// compiles hot translation blocks into small WebAssembly modules. It cannot instantiate them itself, so it
// imports the functions below from the import module `rqemu_tb`; each TB module imports the emulator's
// `env.memory` and the helpers it calls (see below), and exports functions `tb0`, `tb1`, ... of type
// (i32 env, i32 out) -> i32.
// This host compiles and instantiates a module synchronously, places its exports in free slots of the
// emulator's function table and tells the emulator the slot numbers, which on wasm32 *are* function
// pointers: the emulator then calls the TB like any Rust `extern "C" fn`.
//
// Policy stays in Rust: which TBs to compile, grouping, the live-module cap and LRU eviction are decided by
// the emulator (rqemu-accel's tiering), which only calls `release` here. The host keeps a free list of
// table slots (a freed slot is nulled, so the instance can be collected, and reused before the table grows),
// an optional hard cap as a backstop, and statistics.
//
// Usage:
//   import { createTbHost } from "./tb-host.mjs";
//   const tb = createTbHost({ maxInstances: 4096 });
//   const { instance } = await WebAssembly.instantiate(bytes, { ...otherImports, ...tb.imports });
//   tb.attach(instance.exports);   // finds `memory` and `__indirect_function_table`
//   ... instance.exports.main() ...; console.log(tb.stats());
//
// A TB module imports functions of the emulator by table slot: import module `fn`, field the slot in decimal
// (e.g. `(import "fn" "1234" (func ...))` for the helper whose Rust function pointer is 1234). The host
// resolves them with `table.get` on first use and caches them (a slot this host fills or frees is dropped
// from the cache). rqemu's modules do this instead of `call_indirect` through an imported `env.table`:
// V8 (Node 20) registers every instance that imports a table with it, after which each table.grow and
// table.set costs time proportional to the number of such instances (measured: thousands of live TB
// modules make instantiation milliseconds each; without the table import it stays a few microseconds).
// `env.table` is still offered to modules that import it.
//
// Imports (module `rqemu_tb`; pointers are byte offsets in the emulator's memory):
//   instantiate(bytes_ptr, bytes_len, nexports, out_ptr) -> i32
//       compiles the module, instantiates it with { env: { memory, table }, fn: <slots> }, writes the slot of
//       export `tb{i}` as a little-endian u32 at out_ptr + 4*i, and returns a handle > 0; -1 on failure
//       (the message is kept for last_error).
//   release(handle)            nulls the module's slots, returns them to the free list, drops the instance.
//   flush()                    releases every module.
//   tail_calls_supported() -> i32   1 when the engine validates `return_call` (checked once, at start-up).
//   last_error(ptr, cap) -> i32     copies the last failure message (UTF-8, truncated to cap) to ptr and
//                                   returns its full length in bytes.
//   now() -> f64               milliseconds (performance.now()), for the emulator's compile-time statistics.

/** The smallest module using `return_call`: (func return_call 0). Valid only where tail calls are enabled. */
const TAIL_CALL_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, //             type section: [] -> []
  0x03, 0x02, 0x01, 0x00, //                         function section: one function of type 0
  0x0a, 0x06, 0x01, 0x04, 0x00, 0x12, 0x00, 0x0b, // code: no locals, return_call 0, end
]);

/** Table slots added per grow, at least. */
const GROW_CHUNK = 256;

/** Whether this engine supports the tail-call proposal; evaluated once when the module loads. */
export const TAIL_CALLS = WebAssembly.validate(TAIL_CALL_PROBE);

/**
 * Creates a TB host.
 * @param {{maxInstances?: number}} [options] maxInstances: hard limit of live modules; `instantiate`
 *   fails beyond it (the emulator's own cap should be lower: it evicts before reaching this).
 */
export function createTbHost(options = {}) {
  const maxInstances = options.maxInstances ?? Infinity;
  let memory = null;
  let table = null;
  /** What every TB module is instantiated with (set by `attach`). */
  let importObject = null;
  /** handle -> { slots: number[], instance, bytes } */
  const live = new Map();
  /** Table slots freed by `release`, reused before the table grows. */
  const freeSlots = [];
  let nextHandle = 1;
  let lastError = "";
  const stats = { instantiated: 0, released: 0, failed: 0, bytesCompiled: 0, compileMs: 0, tableGrown: 0 };
  const encoder = new TextEncoder();
  /** Import name (slot in decimal) -> the function in that table slot, resolved on first use. */
  const fnCache = new Map();
  /** The `fn` import module of every instantiation: resolves names through `fnCache`. */
  const fnImports = new Proxy(Object.create(null), {
    get(_, name) {
      if (typeof name !== "string") return undefined;
      let fn = fnCache.get(name);
      if (fn === undefined) {
        const slot = Number(name);
        fn = Number.isInteger(slot) && slot >= 0 && slot < table.length ? table.get(slot) : null;
        if (typeof fn !== "function") throw new Error(`tb-host: import fn.${name} names no function in the table`);
        fnCache.set(name, fn);
      }
      return fn;
    },
  });

  function fail(message) {
    lastError = String(message);
    stats.failed++;
    return -1;
  }

  function allocSlots(n) {
    const slots = [];
    while (slots.length < n && freeSlots.length > 0) slots.push(freeSlots.pop());
    if (slots.length < n) {
      // Grow in chunks: each grow costs at least a copy of the table (and, in V8, an update of every
      // instance importing it), so grow rarely and keep the spare slots in the free list.
      const missing = n - slots.length;
      const chunk = Math.max(missing, GROW_CHUNK);
      const first = table.grow(chunk);
      stats.tableGrown += chunk;
      for (let i = 0; i < missing; i++) slots.push(first + i);
      for (let i = chunk - 1; i >= missing; i--) freeSlots.push(first + i);
    }
    return slots;
  }

  function releaseHandle(handle) {
    const entry = live.get(handle);
    if (!entry) return;
    for (const slot of entry.slots) {
      table.set(slot, null);
      fnCache.delete(String(slot));
      freeSlots.push(slot);
    }
    live.delete(handle);
    stats.released++;
  }

  const rqemu_tb = {
    instantiate(ptr, len, nexports, outPtr) {
      if (!memory || !table) return fail("tb-host: attach() was not called");
      if (live.size >= maxInstances) return fail(`tb-host: ${live.size} live instances (maxInstances)`);
      const start = performance.now();
      let instance;
      try {
        // Copy the bytes: the emulator's memory may grow (detaching the buffer) during compilation.
        const bytes = new Uint8Array(memory.buffer, ptr >>> 0, len >>> 0).slice();
        const module = new WebAssembly.Module(bytes);
        instance = new WebAssembly.Instance(module, importObject);
      } catch (err) {
        return fail(err instanceof Error ? `${err.name}: ${err.message}` : err);
      }
      const fns = [];
      for (let i = 0; i < nexports; i++) {
        const fn = instance.exports[`tb${i}`];
        if (typeof fn !== "function") return fail(`tb-host: the module has no function export tb${i}`);
        fns.push(fn);
      }
      let slots;
      try {
        slots = allocSlots(nexports);
      } catch (err) {
        return fail(`tb-host: cannot grow the table: ${err}`);
      }
      const view = new DataView(memory.buffer);
      for (let i = 0; i < nexports; i++) {
        table.set(slots[i], fns[i]);
        fnCache.delete(String(slots[i]));
        view.setUint32((outPtr >>> 0) + 4 * i, slots[i], true);
      }
      const handle = nextHandle++;
      live.set(handle, { slots, instance, bytes: len >>> 0 });
      stats.instantiated++;
      stats.bytesCompiled += len >>> 0;
      stats.compileMs += performance.now() - start;
      return handle;
    },
    release(handle) {
      releaseHandle(handle);
    },
    flush() {
      for (const handle of [...live.keys()]) releaseHandle(handle);
    },
    tail_calls_supported() {
      return TAIL_CALLS ? 1 : 0;
    },
    last_error(ptr, cap) {
      const bytes = encoder.encode(lastError);
      if (memory) new Uint8Array(memory.buffer, ptr >>> 0, Math.min(cap >>> 0, bytes.length)).set(bytes.subarray(0, cap >>> 0));
      return bytes.length;
    },
    now() {
      return performance.now();
    },
  };

  return {
    /** Spread into the emulator's import object. */
    imports: { rqemu_tb },
    /**
     * Connects the host to the emulator once it is instantiated.
     * @param {{memory: WebAssembly.Memory, __indirect_function_table?: WebAssembly.Table, table?: WebAssembly.Table}} exports
     */
    attach(exports) {
      memory = exports.memory;
      table = exports.__indirect_function_table ?? exports.table;
      if (!(memory instanceof WebAssembly.Memory)) throw new Error("tb-host: the emulator exports no memory");
      if (!(table instanceof WebAssembly.Table)) {
        throw new Error("tb-host: the emulator exports no function table (link with --export-table)");
      }
      fnCache.clear();
      importObject = { env: { memory, table }, fn: fnImports };
    },
    /** Counters: live instances and slots, totals since creation. */
    stats() {
      let liveBytes = 0;
      for (const e of live.values()) liveBytes += e.bytes;
      return { ...stats, live: live.size, liveBytes, freeSlots: freeSlots.length, tableSize: table ? table.length : 0 };
    },
  };
}
