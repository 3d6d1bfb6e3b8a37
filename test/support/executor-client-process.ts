/**
 * A worker's stand-in for test/integration/executor.test.ts: attaches to the sandbox executor of the container
 * named in argv[2], sends the run request in argv[3] (JSON), prints "sent" once the executor has
 * read it, and waits there to be killed mid-command.
 */
import Docker from 'dockerode';
import { attachExecutor, type ExecutorRunRequest } from '../../sandbox/executor-client.js';

const [containerId, request] = process.argv.slice(2);
const client = await attachExecutor(new Docker().getContainer(containerId!));
client.run(JSON.parse(request!) as ExecutorRunRequest).catch(() => undefined);
// The executor serves requests in the order it reads them: the pong comes after the run started.
await client.ping();
console.log('sent');
setInterval(() => undefined, 60_000);
