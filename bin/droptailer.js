#!/usr/bin/env node
// The compiled entry point when the package was built (npm pack / install from the registry: Node
// does not strip types below node_modules), otherwise the TypeScript sources (Node >= 22.18).
import { existsSync } from "node:fs"

const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(`droptailer needs Node.js >= 22.19 (this is ${process.version}); in a checkout, npm scripts use the project's Node 24`)
  process.exit(1)
}

const compiled = new URL("../dist/main/bin.js", import.meta.url)
await import(existsSync(compiled) ? compiled.href : new URL("../src/main/bin.ts", import.meta.url).href)
