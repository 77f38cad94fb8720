/**
 * The checked-in generated code matches proto/*.proto: regenerate into a temp dir with
 * scripts/proto.ts (ts-proto through protoc) and compare file by file.
 */
import { describe, expect, it } from "vitest"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { nodeBin, repo } from "./support.ts"

const listFiles = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? listFiles(path) : [path]
  })

describe("generated protobuf code", () => {
  it("is up to date with proto/ (run `npm run proto` when this fails)", () => {
    const out = mkdtempSync(join(tmpdir(), "droptailer-proto-"))
    try {
      execFileSync(nodeBin, [join(repo, "scripts/proto.ts"), out], { stdio: "pipe" })
      const checkedIn = join(repo, "src/transport/generated")
      const fresh = listFiles(out).map((f) => relative(out, f)).sort()
      expect(listFiles(checkedIn).map((f) => relative(checkedIn, f)).sort()).toEqual(fresh)
      for (const file of fresh) {
        expect(readFileSync(join(checkedIn, file), "utf8"), file).toBe(readFileSync(join(out, file), "utf8"))
      }
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  }, 60_000)
})
