/** Entry of a worker process (`--workers N`, see workers.ts); started by the primary, never by hand. */
import { runWorker } from './workers.js';

await runWorker();
