import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), "utf8")

describe("README", () => {
  it("shows the library example that CI type-checks (examples/library.ts)", () => {
    const block = /```ts\n(import \{ NodeRuntime[\s\S]*?)```/.exec(read("README.md"))?.[1]
    const example = read("examples/library.ts")
      .replace(/^\/\*\*[\s\S]*?\*\/\n/, "")
      .replaceAll("\"../src/index.ts\"", "\"droptailer\"")
    expect(block).toBe(example)
  })

  it("gives the two set-up commands: one runs, one tests", () => {
    const readme = read("README.md")
    expect(readme).toContain("npm ci && npm start")
    expect(readme).toContain("npm ci && npm test")
    const scripts = JSON.parse(read("package.json")).scripts
    expect(scripts.start).toContain("demo")
    expect(scripts.test).toContain("vitest run")
  })
})
