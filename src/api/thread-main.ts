/** Entry of the admin API thread (see thread.ts); started by the gateway, never by hand. */
import { runApiThread } from './thread.js';

await runApiThread();
