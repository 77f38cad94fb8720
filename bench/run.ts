/**
 * All benchmarks, one after another: `npm run bench` (= `node bench/run.ts`).
 *
 * parse, journal (root + journald), transport, server-load, enrich (with --expose-gc), e2e (root +
 * journald).
 * Each runs as its own Node process with this Node (so the figures are not disturbed by each
 * other's heaps); extra arguments after `--only` pick some of them: `node bench/run.ts --only e2e`.
 * Exits non-zero when any of them failed, after running the rest.
 */
import { spawn } from "node:child_process"
import * as Path from "node:path"

const benches: ReadonlyArray<{ readonly name: string; readonly nodeArgs: ReadonlyArray<string> }> = [
  { name: "parse", nodeArgs: [] },
  { name: "journal", nodeArgs: [] },
  { name: "transport", nodeArgs: [] },
  { name: "server-load", nodeArgs: [] },
  { name: "enrich", nodeArgs: ["--expose-gc"] },
  { name: "e2e", nodeArgs: [] }
]

const only = process.argv.indexOf("--only")
const selected = only >= 0 ? new Set(process.argv.slice(only + 1)) : undefined

const run = (name: string, nodeArgs: ReadonlyArray<string>): Promise<number> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs, Path.join(import.meta.dirname, `${name}.ts`)], { stdio: "inherit" })
    child.on("error", () => resolve(1))
    child.on("exit", (code, signal) => resolve(code ?? (signal === null ? 1 : 128)))
  })

const failed: Array<string> = []
for (const bench of benches) {
  if (selected !== undefined && !selected.has(bench.name)) continue
  console.log(`\n=== bench/${bench.name}.ts ${bench.nodeArgs.join(" ")} (${new Date().toISOString()})`)
  const started = performance.now()
  const code = await run(bench.name, bench.nodeArgs)
  console.log(`=== bench/${bench.name}.ts: ${code === 0 ? "done" : `FAILED (exit ${code})`} in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  if (code !== 0) failed.push(bench.name)
}
if (failed.length > 0) {
  console.error(`failed: ${failed.join(", ")}`)
  process.exitCode = 1
}
