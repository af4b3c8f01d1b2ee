#!/usr/bin/env node
// Runs one export of an rqemu wasm32 test module under Node.
//
//   node tests/wasm/run.mjs <file.wasm> <export>
//
// The module is instantiated with the `env` imports it expects:
//   host_write(ptr, len)  writes `len` bytes of UTF-8 at `ptr` in the module's memory to stdout;
//   host_now()            returns seconds (performance.now() / 1000), the clock for benchmarks;
// and the `rqemu_tb` imports of the wasm32 backend's TB host (tcg/wasm32/js/tb-host.mjs), which compiles
// and instantiates TB modules against this module's memory and function table.
// The export is called with no arguments. Exit status: 0 when it returns 0 or nothing, 1 when it
// returns a nonzero number (a failure count), 2 on a usage error, 3 when the module traps (a Rust
// panic ends in a trap after the module's panic hook printed the message) or fails to load.

import { readFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { createTbHost } from "../../tcg/wasm32/js/tb-host.mjs";

const [file, exportName] = process.argv.slice(2);
if (!file || !exportName) {
  console.error("usage: node tests/wasm/run.mjs <file.wasm> <export>");
  process.exit(2);
}

let memory = null;
const tbHost = createTbHost();
const imports = {
  ...tbHost.imports,
  env: {
    host_write(ptr, len) {
      // Copy out first: the memory may grow (detaching the buffer) before the write completes.
      process.stdout.write(new Uint8Array(memory.buffer, ptr, len).slice());
    },
    host_now() {
      return performance.now() / 1000;
    },
  },
};

function fail(what, err) {
  console.error(`${file}: ${what}: ${err instanceof Error ? err.stack : err}`);
  process.exit(3);
}

let instance;
try {
  ({ instance } = await WebAssembly.instantiate(await readFile(file), imports));
} catch (err) {
  fail("cannot load the module", err);
}
memory = instance.exports.memory;
// A module without a function table export (an old build) still runs exports that compile no TB.
if (instance.exports.__indirect_function_table) tbHost.attach(instance.exports);
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
