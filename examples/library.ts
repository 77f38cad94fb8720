/**
 * droptailer as a library: follow the journal with droptailer's source, parser and checkpoints,
 * but deliver to your own sink — here, a count of drops per destination port.
 * Run: node examples/library.ts   (type-checked in CI with the rest of the project)
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { CheckpointStore, ClientPipeline, defaultPrefixes, EventSink, JournalSource, parseLine } from "../src/index.ts"

// The pure core needs no runtime: one line in, one typed event out.
const parsed = parseLine(
  "nftables-metal-dropped: IN=vrf09 OUT= SRC=1.2.3.4 DST=4.3.2.1 LEN=40 PROTO=TCP SPT=59265 DPT=445 SYN",
  defaultPrefixes,
  { timestamp: Date.now() * 1000, host: "fw-1" }
)
if (parsed._tag === "Event") console.log(parsed.event.dst.port) // 445

// A sink is anything that acknowledges a batch once it has dealt with it.
const dropsByPort = new Map<number, number>()
const CountingSink = Layer.succeed(
  EventSink,
  EventSink.of({
    deliver: (batch) =>
      Effect.sync(() => {
        for (const { event } of batch) {
          const port = event.dst.port ?? 0
          dropsByPort.set(port, (dropsByPort.get(port) ?? 0) + 1)
        }
        console.log(Object.fromEntries(dropsByPort))
      })
  })
)

const Pipeline = ClientPipeline.layerWith({ prefixes: defaultPrefixes, start: { _tag: "New" } }).pipe(
  Layer.provide(Layer.mergeAll(
    JournalSource.layer,
    CheckpointStore.layerWith({ directory: "/tmp/droptailer-example" }),
    CountingSink
  ))
)

Effect.flatMap(ClientPipeline, (pipeline) => pipeline.run).pipe(
  Effect.provide(Pipeline),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain
)
