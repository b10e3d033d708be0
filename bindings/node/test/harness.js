'use strict'
// A real nats-server per test, on a free loopback port.
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

function natsServerBin() {
  if (process.env.NATS_SERVER_BIN) return process.env.NATS_SERVER_BIN
  const cache = process.env.JETSTATION_CACHE ?? path.join(os.homedir(), '.cache', 'jetstation')
  const bin = path.join(cache, 'bin', 'nats-server')
  if (!fs.existsSync(bin)) throw new Error(`no nats-server at ${bin}: run scripts/setup.sh`)
  return bin
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
    srv.on('error', reject)
  })
}

async function startServer({ config = '', binary } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jetstation-node-nats-'))
  const port = await freePort()
  const conf = path.join(dir, 'server.conf')
  fs.writeFileSync(conf, `listen: 127.0.0.1:${port}\njetstream { store_dir: "${dir}/store" }\n${config}\n`)
  const child = spawn(binary ?? natsServerBin(), ['-c', conf, '-l', path.join(dir, 'server.log')], { stdio: 'ignore' })
  const deadline = Date.now() + 15000
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true) })
      s.on('error', () => resolve(false))
    })
    if (ok) break
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(fs.readFileSync(path.join(dir, 'server.log'), 'utf8'))
    await new Promise((r) => setTimeout(r, 20))
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    stop() { child.kill('SIGKILL') },
    close() { child.kill('SIGKILL'); fs.rmSync(dir, { recursive: true, force: true }) },
  }
}

module.exports = { startServer }
