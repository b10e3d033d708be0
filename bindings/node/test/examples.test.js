'use strict'
// The TypeScript quickstart, compiled with tsc --strict, runs as a test.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const path = require('node:path')
const { startServer } = require('./harness.js')

test('quickstart (TypeScript) runs end to end', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const root = path.resolve(__dirname, '..')
  execFileSync('npm', ['run', '-s', 'build:example'], { cwd: root, stdio: 'inherit' })
  const out = execFileSync(process.execPath, [path.join(root, 'build/examples/quickstart.mjs')], {
    env: { ...process.env, NATS_URL: server.url },
    encoding: 'utf8',
    timeout: 60000,
  })
  assert.match(out, /dead letter after 3 deliveries: TypeError: salary is not a number/)
  assert.match(out, /payroll applied 4 of 5 changes/)
  assert.match(out, /quickstart OK\s*$/)
})
