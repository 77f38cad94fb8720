/**
 * The Dockerfiles, linted offline (no Docker engine here; hadolint is not to be had from Debian or
 * npm): see lintDockerfile for the rules. Each rule is also shown to catch what it is for.
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { dockerignore, lintDockerfile, parseDockerfile, type LintContext } from "./dockerfile.ts"
import { repoPath, repoRoot } from "./repo.ts"

const read = (name: string) => readFileSync(repoPath(name), "utf8")
const ignoreText = read(".dockerignore")
const images = [
  { file: "Dockerfile", role: "server" },
  { file: "Dockerfile.client", role: "client" }
] as const

describe.each(images)("$file ($role image)", ({ file, role }) => {
  const text = read(file)
  const context: LintContext = { role, repoRoot, dockerignore: ignoreText }

  it("has no lint problems", () => {
    expect(lintDockerfile(text, context)).toEqual([])
  })

  it("builds on Node 24 and runs the TypeScript sources with it", () => {
    const parsed = parseDockerfile(text)
    expect(parsed.stages.length).toBeGreaterThanOrEqual(2)
    expect(parsed.stages.at(-1)?.image).toMatch(/^(node:24|gcr\.io\/distroless\/nodejs24)/)
    expect(parsed.stages.at(-1)?.instructions.at(-1)).toMatchObject({
      keyword: "ENTRYPOINT",
      args: `["node", "src/main/bin.ts", "${role}"]`
    })
  })

  const broken: ReadonlyArray<readonly [string, (text: string) => string, string]> = [
    ["a floating Node version", (t) => t.replace(/FROM node:24-slim AS runtime/, "FROM node:slim AS runtime"), "expected node:24-slim"],
    ["dev dependencies", (t) => t.replace(/npm ci --omit=dev/, "npm ci"), "npm ci without --omit=dev"],
    ["npm install", (t) => t.replace(/npm ci --omit=dev/, "npm install --omit=dev"), "not npm install"],
    ["copying the whole context", (t) => t.replace(/COPY src \.\/src/, "COPY . ."), "copies ."],
    ["a COPY source that does not exist", (t) => t.replace(/COPY proto \.\/proto/, "COPY protos ./proto"), "COPY source protos does not exist"],
    ["an ENTRYPOINT in shell form", (t) => t.replace(/ENTRYPOINT \[.*\]/, `ENTRYPOINT node src/main/bin.ts ${role}`), "DL3025"],
    ["an ENTRYPOINT with another file", (t) => t.replace(/src\/main\/bin\.ts/g, "src/main.ts"), "expected [\"node\",\"src/main/bin.ts\""],
    ["ADD", (t) => t.replace(/COPY src \.\/src/, "ADD src ./src"), "DL3020"],
    ["a misspelt instruction", (t) => t.replace(/^EXPOSE/m, "EXPOS"), "unknown instruction EXPOS"],
    ["an unknown stage", (t) => t.replace(/--from=dependencies/, "--from=deps"), "COPY --from=deps names no earlier stage"]
  ]
  it.each(broken)("would catch %s", (_, mutate, expected) => {
    const mutated = mutate(text)
    expect(mutated).not.toBe(text)
    expect(lintDockerfile(mutated, context).join("\n")).toContain(expected)
  })

  if (role === "server") {
    it("runs as a numeric non-root user", () => {
      expect(lintDockerfile(text.replace(/^USER .*$/m, "USER root"), context).join("\n")).toContain("numeric non-root uid")
      expect(lintDockerfile(text.replace(/^USER .*$/m, ""), context).join("\n")).toContain("DL3002")
    })
  } else {
    it("installs journalctl lean, and documents the journal mounts and why it runs as root", () => {
      expect(lintDockerfile(text.replace(/--no-install-recommends /, ""), context).join("\n")).toContain("DL3015")
      expect(lintDockerfile(text.replace(/ systemd \\/, " procps \\"), context).join("\n")).toContain("systemd package")
      expect(lintDockerfile(text.replace(/\/etc\/machine-id:ro/g, "/etc/machine-id"), context).join("\n")).toContain("/etc/machine-id")
      expect(lintDockerfile(text.replace(/Why root/g, "Root"), context).join("\n")).toContain("DL3002")
    })
  }
})

describe(".dockerignore", () => {
  const { patterns, included } = dockerignore(ignoreText)

  it("sends only what the images copy, nothing else", () => {
    expect(patterns[0]).toBe("*")
    for (const path of ["package.json", "package-lock.json", "src", "src/main/bin.ts", "proto/droptailer.proto"]) {
      expect([path, included(path)]).toEqual([path, true])
    }
    for (const path of ["node_modules", "node_modules/effect/package.json", ".git", "test", "bench", "certs/tls.key", "Dockerfile", "README.md"]) {
      expect([path, included(path)]).toEqual([path, false])
    }
  })
})
