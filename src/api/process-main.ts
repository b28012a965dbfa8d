/** Entry of the admin API process (see process.ts); started by the gateway, never by hand. */
import { runApiProcess } from './process.js';

await runApiProcess();
