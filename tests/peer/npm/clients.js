'use strict'
// Drives the npm clamd clients clamdjs 1.0.2 and clamav.js 0.12.0 against one daemon and
// prints one JSON line per operation: {"op": name, "value": ...} or {"op": name, "error": ...}.
// Run by tests/peer/npm_clients_test.py: node clients.js SPEC.json, with NODE_PATH pointing
// at the node_modules tools/setup-debian.sh installs (build/npm/node_modules). The spec gives
// the daemon's TCP port and unix socket, the file paths, and the test bytes (base64, so no
// test-signature bytes live in this file). Every operation is bounded by OP_TIMEOUT_MS.

const fs = require('fs')
const { Readable } = require('stream')
const clamdjs = require('clamdjs')
const clamav = require('clamav.js')

const OP_TIMEOUT_MS = 15000
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const bytes = (name) => Buffer.from(spec.data[name], 'base64')

function emit (op, result) {
  process.stdout.write(JSON.stringify(Object.assign({ op }, result)) + '\n')
}

function bounded (promise) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no result after ${OP_TIMEOUT_MS} ms`)), OP_TIMEOUT_MS)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

async function op (name, fn) {
  try {
    emit(name, { value: await bounded(fn()) })
  } catch (e) {
    emit(name, { error: String(e && e.message !== undefined ? e.message : e) })
  }
}

// A readable that yields `buf` in pieces of `piece` bytes (one INSTREAM chunk each).
function pieces (buf, piece) {
  let at = 0
  return new Readable({
    read () {
      if (at >= buf.length) { this.push(null); return }
      this.push(buf.subarray(at, at + piece))
      at += piece
    }
  })
}

// clamav.js callback API -> promise. scan() calls back (err, object, virusName).
function cjsScan (where, stream) {
  return new Promise((resolve) => {
    clamav.createScanner(where.port, where.host).scan(stream, (err, _obj, virus) => {
      resolve({ error: err ? err.message : null, virus: virus || null })
    })
  })
}

function cjsScanPath (where, path, expected) {
  return new Promise((resolve) => {
    const results = []
    const done = () => resolve(results.sort((a, b) => a.file < b.file ? -1 : 1))
    const timer = setTimeout(done, OP_TIMEOUT_MS - 1000)
    clamav.createScanner(where.port, where.host).scan(path, (err, file, virus) => {
      results.push({ file, error: err ? err.message : null, virus: virus || null })
      if (results.length === expected) { clearTimeout(timer); done() }
    })
  })
}

function cjsPing (where) {
  return new Promise((resolve) => {
    clamav.ping(where.port, where.host, 5000, (err) => resolve(err ? `error: ${err.message}` : 'PONG'))
  })
}

function cjsVersion (where) {
  return new Promise((resolve) => {
    clamav.version(where.port, where.host, 5000, (err, v) => resolve(err ? `error: ${err.message}` : v))
  })
}

async function main () {
  const host = '127.0.0.1'
  const port = spec.tcp_port
  const scanner = clamdjs.createScanner(host, port)
  const tcp = { port, host }
  // clamav.js passes (port, host) to net.Socket.connect: a non-numeric string "port" is a
  // unix socket path there.
  const unix = { port: spec.unix_path, host }

  await op('clamdjs.ping (zPING)', () => clamdjs.ping(host, port, 5000))
  await op('clamdjs.version (zVERSION)', () => clamdjs.version(host, port, 5000))
  await op('clamdjs.scanBuffer(clean) (zINSTREAM)', () => scanner.scanBuffer(bytes('clean'), 5000))
  await op('clamdjs.scanBuffer(EICAR)', () => scanner.scanBuffer(bytes('eicar'), 5000))
  await op('clamdjs.scanBuffer(signature across 1024-byte chunks)',
    () => scanner.scanBuffer(bytes('straddle'), 5000, 1024))
  await op('clamdjs.scanBuffer(empty)', () => scanner.scanBuffer(Buffer.alloc(0), 5000))
  await op('clamdjs.scanFile(two-sigs.txt)', () => scanner.scanFile(spec.files.two_sigs, 5000))
  await op('clamdjs.scanDirectory(tree 2 + 2, parallel INSTREAMs)', async () => {
    const r = await scanner.scanDirectory(spec.files.tree, { timeout: 5000 })
    r.Result.sort((a, b) => a.file < b.file ? -1 : 1)
    return r
  })
  await op('clamdjs.isCleanReply(scanBuffer(clean))',
    async () => clamdjs.isCleanReply(await scanner.scanBuffer(bytes('clean'), 5000)))

  for (const [t, where] of [['tcp', tcp], ['unix', unix]]) {
    await op(`clamav.js ${t}: ping (nPING)`, () => cjsPing(where))
    await op(`clamav.js ${t}: version (nVERSION)`, () => cjsVersion(where))
    await op(`clamav.js ${t}: scan(stream clean) (nINSTREAM)`, () => cjsScan(where, pieces(bytes('clean'), 100)))
    await op(`clamav.js ${t}: scan(stream EICAR)`, () => cjsScan(where, pieces(bytes('eicar'), 1 << 16)))
    await op(`clamav.js ${t}: scan(stream, signature across 7-byte chunks)`,
      () => cjsScan(where, pieces(bytes('straddle'), 7)))
    await op(`clamav.js ${t}: scan(path tree 2 + 2: one INSTREAM per file)`,
      () => cjsScanPath(where, spec.files.tree, 4))
  }
}

main().then(() => process.exit(0), (e) => { emit('main', { error: String(e) }); process.exit(1) })
