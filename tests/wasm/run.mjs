#!/usr/bin/env node
// Runs one export of an rqemu wasm32 test module under Node, or every guest image of a directory.
//
//   node tests/wasm/run.mjs <file.wasm> <export>
//   node tests/wasm/run.mjs <file.wasm> guest <dir>
//
// The module is instantiated with the `env` imports it expects:
//   host_write(ptr, len)  writes `len` bytes of UTF-8 at `ptr` in the module's memory to stdout;
//   host_now()            returns seconds (performance.now() / 1000), the clock for benchmarks;
// and the `rqemu_tb` imports of the wasm32 backend's TB host (tcg/wasm32/js/tb-host.mjs), which compiles
// and instantiates TB modules against this module's memory and function table.
// The export is called with no arguments. Exit status: 0 when it returns 0 or nothing, 1 when it
// returns a nonzero number (a failure count), 2 on a usage error, 3 when the module traps (a Rust
// panic ends in a trap after the module's panic hook printed the message) or fails to load.
//
// Guest mode runs every `<name>.img` (a multiboot image) of <dir> on the PC machine inside the module
// (`guest_run`, see tests/wasm/src/guest.rs: tci first tier, wasm32 hot tier, virtual time), each in a fresh
// instance, and compares the exit status and the debug console output with `<name>.expect` (first line: the
// status; the rest: the output, exactly). It prints one line per image and
// `guest-tests: host=wasm32-node images=<n> failures=<n>`; exit status 1 when any image failed or there
// were none.

import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createTbHost } from "../../tcg/wasm32/js/tb-host.mjs";

const [file, exportName, guestDir] = process.argv.slice(2);
if (!file || !exportName || (exportName === "guest" && !guestDir)) {
  console.error("usage: node tests/wasm/run.mjs <file.wasm> <export> | <file.wasm> guest <dir>");
  process.exit(2);
}

function fail(what, err) {
  console.error(`${file}: ${what}: ${err instanceof Error ? err.stack : err}`);
  process.exit(3);
}

// An instance of `module` with its imports; output of `host_write` goes to `write`.
async function instantiate(module, write) {
  let memory = null;
  const tbHost = createTbHost();
  const imports = {
    ...tbHost.imports,
    env: {
      host_write(ptr, len) {
        // Copy out first: the memory may grow (detaching the buffer) before the write completes.
        write(new Uint8Array(memory.buffer, ptr, len).slice());
      },
      host_now() {
        return performance.now() / 1000;
      },
    },
  };
  const instance = await WebAssembly.instantiate(module, imports);
  memory = instance.exports.memory;
  // A module without a function table export (an old build) still runs exports that compile no TB.
  if (instance.exports.__indirect_function_table) tbHost.attach(instance.exports);
  return instance;
}

let module;
try {
  module = await WebAssembly.compile(await readFile(file));
} catch (err) {
  fail("cannot load the module", err);
}

if (exportName === "guest") {
  process.exitCode = await runGuests(guestDir);
} else {
  let instance;
  try {
    instance = await instantiate(module, (bytes) => process.stdout.write(bytes));
  } catch (err) {
    fail("cannot load the module", err);
  }
  const fn = instance.exports[exportName];
  if (typeof fn !== "function") {
    const names = Object.keys(instance.exports).filter((k) => typeof instance.exports[k] === "function");
    console.error(`${file}: no export \`${exportName}\` (exports: ${names.join(", ")})`);
    process.exit(2);
  }

  let result;
  try {
    result = fn();
  } catch (err) {
    fail(`\`${exportName}\` trapped`, err);
  }
  // A u32 count comes back as a signed i32 (`>>> 0` shows it unsigned); a u64 as a BigInt.
  const count = typeof result === "number" ? result >>> 0 : result;
  if (count !== undefined && count !== 0 && count !== 0n) {
    console.error(`${file}: \`${exportName}\` returned ${count}`);
    process.exitCode = 1;
  }
}

// A short, printable form of output for failure reports.
function show(bytes) {
  return JSON.stringify(Buffer.from(bytes).toString("latin1"));
}

// Runs one image in a fresh instance: { ms, status, debugcon, serial, error, tiers } (ms: the time of `guest_run`), or
// throws on a trap.
async function runGuest(image, cmdline) {
  let printed = [];
  const instance = await instantiate(module, (bytes) => printed.push(Buffer.from(bytes)));
  const ex = instance.exports;
  const copyIn = (bytes) => {
    const ptr = ex.guest_alloc(bytes.length) >>> 0;
    new Uint8Array(ex.memory.buffer, ptr, bytes.length).set(bytes);
    return ptr;
  };
  const img = copyIn(image);
  const cmd = copyIn(Buffer.from(cmdline));
  let status;
  const start = performance.now();
  try {
    status = ex.guest_run(img, image.length, cmd, Buffer.byteLength(cmdline));
  } catch (err) {
    const text = Buffer.concat(printed).toString();
    throw new Error(`trapped: ${err.message}${text ? `: ${text.trim()}` : ""}`);
  }
  // Outputs are read after the run: the memory may have grown, so views are made now.
  const output = (kind) => {
    const ptr = ex.guest_output_ptr(kind) >>> 0;
    const len = ex.guest_output_len(kind) >>> 0;
    return Buffer.from(new Uint8Array(ex.memory.buffer, ptr, len));
  };
  const ms = performance.now() - start;
  const result = {
    ms,
    status,
    debugcon: output(0),
    serial: output(1),
    error: output(2).toString(),
    tiers: output(3).toString(),
  };
  ex.guest_free(img, image.length);
  ex.guest_free(cmd, Buffer.byteLength(cmdline));
  return result;
}

// Guest mode (see the header); returns the exit status.
async function runGuests(dir) {
  let names;
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".img")).sort();
  } catch (err) {
    console.error(`${dir}: cannot list: ${err.message}`);
    return 2;
  }
  let failures = 0;
  for (const img of names) {
    const name = img.slice(0, -".img".length);
    const problems = [];
    let detail = "";
    try {
      const expect = (await readFile(join(dir, `${name}.expect`))).toString("latin1");
      const newline = expect.indexOf("\n");
      const wantStatus = Number.parseInt(newline < 0 ? expect : expect.slice(0, newline), 10);
      const wantOutput = Buffer.from(newline < 0 ? "" : expect.slice(newline + 1), "latin1");
      const r = await runGuest(await readFile(join(dir, img)), img);
      detail = ` (${r.tiers} ms=${r.ms.toFixed(0)})`;
      if (r.status !== wantStatus) problems.push(`status ${r.status}, expected ${wantStatus}`);
      if (!r.debugcon.equals(wantOutput)) {
        problems.push(`debugcon ${show(r.debugcon)}, expected ${show(wantOutput)}`);
      }
      if (problems.length && r.error) problems.push(`error: ${r.error.trimEnd()}`);
      if (problems.length && r.serial.length) problems.push(`serial ${show(r.serial)}`);
    } catch (err) {
      problems.push(err.message);
    }
    if (problems.length) {
      failures++;
      console.log(`guest ${name}: FAILED${detail}`);
      for (const p of problems) console.log(`  ${p.replace(/\n/g, "\n  ")}`);
    } else {
      console.log(`guest ${name}: ok${detail}`);
    }
  }
  console.log(`guest-tests: host=wasm32-node images=${names.length} failures=${failures}`);
  if (names.length === 0) console.error(`${dir}: no .img files`);
  return failures > 0 || names.length === 0 ? 1 : 0;
}
