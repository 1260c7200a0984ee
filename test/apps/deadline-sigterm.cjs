// Records three events, then receives SIGTERM while its ingest (INGEST_URL) drips its answer. The url ends in the pid,
// so that the ingest can send a second signal while the agent flushes.
const { Meter } = require('llm-meter');

const meter = new Meter({ url: `${process.env.INGEST_URL}/${process.pid}`, shutdownTimeout: Number(process.env.SHUTDOWN_TIMEOUT), flushInterval: 60000 });
for (let i = 0; i < 3; i++) meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: i, output_tokens: 1 });
process.kill(process.pid, 'SIGTERM');
setInterval(() => {}, 1000);
