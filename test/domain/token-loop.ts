/**
 * Comparing the parser's straight-line paths with its token loop: tabs instead of spaces after
 * the prefix make the parser read every token of a line.
 */
import { expect } from "@effect/vitest"
import type { ParseResult } from "../../src/domain/Parser.ts"

/** The same tokens, read by the token loop only (the head and tail want single spaces). */
export const viaTokenLoop = (line: string): string => {
  const body = line.indexOf(": ") + 2 // after the prefix (all end with ": ")
  return line.slice(0, body) + line.slice(body).replaceAll(" ", "\t")
}

/** Equal results, keys in the same order at every level (the JSON line follows the key order). */
export const expectSame = (actual: ParseResult, expected: ParseResult): void => {
  expect(actual).toStrictEqual(expected)
  expect(JSON.stringify(actual)).toBe(JSON.stringify(expected))
}
