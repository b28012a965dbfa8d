/** Entry of a DNS worker process (see workers.ts); started by the main process, never by hand. */
import { runDnsWorker } from './dns-workers.js';

await runDnsWorker();
