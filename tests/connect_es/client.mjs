// Calls the demo bookshop through protogate with connect-es, the Connect
// client for Node.js (@connectrpc/connect-node), over HTTP/1.1:
//
//   node client.mjs <gateway base URL> <FileDescriptorSet file>
//
// No generated code: the service and message descriptors are built at run
// time from the descriptor set. Every call's outcome is compared with what
// the demo backend holds; the script prints one JSON line
// {"ok": bool, "results": {...}, "failures": [...]} on stdout and exits 1
// when anything differs (2 for bad arguments, 3 when it runs out of time).
// Run by tests/connect_es.rs.

import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  createConnectTransport,
} from "@connectrpc/connect-node";

const [baseUrl, descriptorPath] = process.argv.slice(2);
if (!baseUrl || !descriptorPath) {
  console.error("usage: node client.mjs <gateway base URL> <descriptor set file>");
  process.exit(2);
}

// A bound on the whole run, whatever hangs. Unreferenced, so it never
// keeps a finished run alive.
setTimeout(() => {
  console.error("client.mjs: no result after 40 s");
  process.exit(3);
}, 40_000).unref();

// Each call gets a deadline, sent as Connect-Timeout-Ms.
const CALL = { timeoutMs: 10_000 };

const registry = createFileRegistry(
  fromBinary(FileDescriptorSetSchema, readFileSync(descriptorPath)),
);
const Bookshop = registry.getService("protogate.demo.v1.Bookshop");
const ResourceInfo = registry.getMessage("google.rpc.ResourceInfo");
const BadRequest = registry.getMessage("google.rpc.BadRequest");
if (!Bookshop || !ResourceInfo || !BadRequest) {
  console.error("client.mjs: the descriptor set lacks the bookshop or google.rpc types");
  process.exit(2);
}

const clients = {
  json: createClient(
    Bookshop,
    createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
  ),
  binary: createClient(
    Bookshop,
    createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  ),
};

const results = {};
const failures = [];

// JSON.stringify with 64-bit integers (bigint) as strings.
function show(value) {
  return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v));
}

function expectEqual(check, what, actual, expected) {
  if (show(actual) !== show(expected)) {
    failures.push(`${check}: ${what} is ${show(actual)}, expected ${show(expected)}`);
  }
}

// Runs one check; an exception is a failure of that check, not of the run.
async function check(name, body) {
  try {
    results[name] = await body(name);
  } catch (err) {
    const code = err instanceof ConnectError ? Code[err.code] : "not a ConnectError";
    failures.push(`${name}: threw (${code}) ${err?.message ?? err}`);
  }
}

// Options that record the response's Content-Type.
function recording() {
  const seen = { contentType: null };
  const options = {
    ...CALL,
    onHeader(headers) {
      seen.contentType = headers.get("content-type");
    },
  };
  return [options, seen];
}

function bookSummary(book) {
  return {
    name: book.name,
    title: book.title,
    author: book.author,
    pages: book.pages,
    genre: book.genre,
    sku: book.sku,
    createSeconds: book.createTime?.seconds,
  };
}

// A call that must fail: its code, raw message and decoded details.
async function expectError(name, call, code, message, detail) {
  let error;
  try {
    await call();
  } catch (err) {
    error = err;
  }
  if (!(error instanceof ConnectError)) {
    failures.push(`${name}: expected ConnectError ${Code[code]}, got ${error ?? "success"}`);
    return { code: null };
  }
  const details = error.findDetails(registry).map((d) => ({ type: d.$typeName, ...d }));
  expectEqual(name, "code", Code[error.code], Code[code]);
  expectEqual(name, "message", error.rawMessage, message);
  if (detail) {
    const found = details.find((d) => d.type === detail.type);
    if (!found) {
      failures.push(`${name}: no ${detail.type} detail among ${show(details)}`);
    } else {
      for (const [key, value] of Object.entries(detail.fields)) {
        expectEqual(name, `detail ${key}`, found[key], value);
      }
    }
  }
  return {
    code: Code[error.code],
    message: error.rawMessage,
    details: details.map((d) => d.type),
  };
}

const FICTION = 1;
const SCIENCE = 2;
const EXISTING = 1;
const CREATED = 1_735_689_600n;

// Unary, JSON codec.
await check("unary_json", async (name) => {
  const [options, seen] = recording();
  const book = await clients.json.getBook({ name: "shelves/fiction/books/dune" }, options);
  const summary = bookSummary(book);
  expectEqual(name, "book", summary, {
    name: "shelves/fiction/books/dune",
    title: "Dune",
    author: "Frank Herbert",
    pages: 412,
    genre: FICTION,
    sku: 9_780_441_013_593n,
    createSeconds: CREATED,
  });
  expectEqual(name, "content-type", seen.contentType, "application/json");
  return { ...summary, contentType: seen.contentType };
});

// Unary, binary codec.
await check("unary_binary", async (name) => {
  const [options, seen] = recording();
  const book = await clients.binary.getBook({ name: "shelves/science/books/cosmos" }, options);
  const summary = bookSummary(book);
  expectEqual(name, "book", summary, {
    name: "shelves/science/books/cosmos",
    title: "Cosmos",
    author: "Carl Sagan",
    pages: 365,
    genre: SCIENCE,
    sku: 9_780_345_539_434n,
    createSeconds: CREATED,
  });
  expectEqual(name, "content-type", seen.contentType, "application/proto");
  return { ...summary, contentType: seen.contentType };
});

// A repeated field and paging, in both codecs.
for (const codec of ["json", "binary"]) {
  await check(`list_${codec}`, async (name) => {
    const page = await clients[codec].listBooks({ parent: "shelves/fiction", pageSize: 2 }, CALL);
    const result = {
      names: page.books.map((b) => b.name),
      nextPageToken: page.nextPageToken,
      totalSize: page.totalSize,
    };
    expectEqual(name, "page", result, {
      names: ["shelves/fiction/books/dune", "shelves/fiction/books/emma"],
      nextPageToken: "2",
      totalSize: 3,
    });
    return result;
  });
}

// A method without an HTTP annotation: Connect reaches it all the same.
await check("unannotated_json", async (name) => {
  const reply = await clients.json.countBooks({ parent: "shelves/fiction" }, CALL);
  expectEqual(name, "count", reply.count, 3n);
  return { count: reply.count };
});

// Server streaming: every message, in order, then a clean end.
for (const [codec, request, expected] of [
  [
    "json",
    { shelf: "shelves/fiction", intervalMs: 10 },
    ["dune", "emma", "odyssey"].map((b) => `shelves/fiction/books/${b}`),
  ],
  [
    "binary",
    { shelf: "shelves/science", intervalMs: 10, maxEvents: 3 },
    ["cosmos", "origin", "cosmos"].map((b) => `shelves/science/books/${b}`),
  ],
]) {
  await check(`stream_${codec}`, async (name) => {
    const [options, seen] = recording();
    const events = [];
    // Bounded: the backend sends a fixed number of events.
    for await (const event of clients[codec].watchShelf(request, options)) {
      events.push(event);
      if (events.length > 100) {
        throw new Error("more than 100 events");
      }
    }
    const names = events.map((e) => e.book?.name);
    expectEqual(name, "book names", names, expected);
    expectEqual(
      name,
      "event kinds",
      events.map((e) => e.kind),
      expected.map(() => EXISTING),
    );
    const contentType = codec === "json" ? "application/connect+json" : "application/connect+proto";
    expectEqual(name, "content-type", seen.contentType, contentType);
    return { names, titles: events.map((e) => e.book?.title), contentType: seen.contentType };
  });
}

// Unary errors: code, message and the backend's rich details.
for (const codec of ["json", "binary"]) {
  await check(`error_${codec}`, (name) =>
    expectError(
      name,
      () => clients[codec].getBook({ name: "shelves/fiction/books/none" }, CALL),
      Code.NotFound,
      "book `shelves/fiction/books/none` not found",
      {
        type: "google.rpc.ResourceInfo",
        fields: { resourceType: "book", resourceName: "shelves/fiction/books/none" },
      },
    ),
  );
}

// A stream that fails: the error comes in the end-of-stream message.
for (const codec of ["json", "binary"]) {
  await check(`stream_error_${codec}`, (name) =>
    expectError(
      name,
      async () => {
        for await (const _ of clients[codec].watchShelf({ shelf: "shelves/none" }, CALL)) {
          throw new Error("an event from a shelf that does not exist");
        }
      },
      Code.NotFound,
      "shelf `shelves/none` not found",
      {
        type: "google.rpc.ResourceInfo",
        fields: { resourceType: "shelf", resourceName: "shelves/none" },
      },
    ),
  );
}

// invalid_argument with a BadRequest detail.
await check("invalid_argument_binary", (name) =>
  expectError(
    name,
    () =>
      clients.binary.createBook(
        { parent: "shelves/science", book: { author: "Nobody" }, bookId: "untitled" },
        CALL,
      ),
    Code.InvalidArgument,
    "request has 1 invalid field(s)",
    { type: "google.rpc.BadRequest", fields: {} },
  ),
);

// A write in JSON (a nested message, an enum and an int64 in the request),
// read back in binary.
await check("create_json_read_binary", async (name) => {
  const request = {
    parent: "shelves/science",
    bookId: "brief-history",
    book: {
      title: "A Brief History of Time",
      author: "Stephen Hawking",
      pages: 212,
      genre: SCIENCE,
      sku: 9_780_553_380_163n,
    },
  };
  const expected = {
    name: "shelves/science/books/brief-history",
    title: "A Brief History of Time",
    author: "Stephen Hawking",
    pages: 212,
    genre: SCIENCE,
    sku: 9_780_553_380_163n,
    createSeconds: CREATED,
  };
  const created = bookSummary(await clients.json.createBook(request, CALL));
  expectEqual(name, "created", created, expected);
  const read = bookSummary(await clients.binary.getBook({ name: expected.name }, CALL));
  expectEqual(name, "read back", read, expected);
  return read;
});

// Compressed requests, as connect-es sends them with `sendCompression`:
// Content-Encoding for unary, Connect-Content-Encoding and flagged
// envelopes for streams.
for (const [coding, sendCompression] of [
  ["gzip", compressionGzip],
  ["br", compressionBrotli],
]) {
  const client = createClient(
    Bookshop,
    createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      useBinaryFormat: true,
      sendCompression,
      compressMinBytes: 1,
    }),
  );
  await check(`compressed_${coding}`, async (name) => {
    const book = await client.getBook({ name: "shelves/fiction/books/emma" }, CALL);
    expectEqual(name, "unary title", book.title, "Emma");
    const names = [];
    for await (const event of client.watchShelf(
      { shelf: "shelves/fiction", intervalMs: 10, maxEvents: 2 },
      CALL,
    )) {
      names.push(event.book?.name);
      if (names.length > 100) {
        throw new Error("more than 100 events");
      }
    }
    expectEqual(name, "streamed books", names, [
      "shelves/fiction/books/dune",
      "shelves/fiction/books/emma",
    ]);
    return { title: book.title, names };
  });
}

const ok = failures.length === 0;
process.stdout.write(show({ ok, results, failures }) + "\n");
for (const failure of failures) {
  console.error(`client.mjs: ${failure}`);
}
process.exitCode = ok ? 0 : 1;
