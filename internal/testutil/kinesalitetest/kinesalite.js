// Starts kinesalite on a loopback port and prints {"endpoint": ...}; exits
// when stdin closes, so it never outlives the test that started it.
'use strict'
const kinesalite = require('kinesalite')
const server = kinesalite({ createStreamMs: 10, deleteStreamMs: 10, updateStreamMs: 10, shardLimit: 100 })
server.listen(0, '127.0.0.1', (err) => {
  if (err) { console.error(err); process.exit(1) }
  const { port } = server.address()
  process.stdout.write(JSON.stringify({ endpoint: 'http://127.0.0.1:' + port }) + '\n')
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
