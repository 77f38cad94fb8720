/**
 * The few `Reflect` metadata functions @peculiar/x509's dependency tsyringe insists on
 * (`getMetadata`, `getOwnMetadata`, `defineMetadata`, `hasMetadata`, `metadata`), so that we need
 * no `reflect-metadata` package. Import this module before @peculiar/x509. A real polyfill, when
 * one is loaded first, is left alone.
 */
type Key = unknown
type Target = object

const store = new WeakMap<Target, Map<string | symbol | undefined, Map<Key, unknown>>>()

const table = (target: Target, property: string | symbol | undefined, create: boolean) => {
  let byProperty = store.get(target)
  if (byProperty === undefined) {
    if (!create) return undefined
    byProperty = new Map()
    store.set(target, byProperty)
  }
  let entries = byProperty.get(property)
  if (entries === undefined && create) {
    entries = new Map()
    byProperty.set(property, entries)
  }
  return entries
}

const getOwnMetadata = (key: Key, target: Target, property?: string | symbol): unknown =>
  table(target, property, false)?.get(key)

const getMetadata = (key: Key, target: Target, property?: string | symbol): unknown => {
  for (let t: Target | null = target; t !== null; t = Object.getPrototypeOf(t) as Target | null) {
    const entries = table(t, property, false)
    if (entries?.has(key) === true) return entries.get(key)
  }
  return undefined
}

const defineMetadata = (key: Key, value: unknown, target: Target, property?: string | symbol): void => {
  table(target, property, true)!.set(key, value)
}

const polyfill = {
  getOwnMetadata,
  getMetadata,
  defineMetadata,
  hasMetadata: (key: Key, target: Target, property?: string | symbol): boolean =>
    getMetadata(key, target, property) !== undefined,
  metadata: (key: Key, value: unknown) => (target: Target, property?: string | symbol): void =>
    defineMetadata(key, value, target, property)
}

const reflect = Reflect as unknown as Record<string, unknown>
if (typeof reflect.getMetadata !== "function") {
  for (const [name, fn] of Object.entries(polyfill)) {
    Object.defineProperty(Reflect, name, { value: fn, configurable: true, writable: true })
  }
}

export {}
