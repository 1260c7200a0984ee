// A tenant middleware with an async resolver, whose next middleware throws: prints where the throw went.
const { Meter } = require('llm-meter');

process.on('unhandledRejection', (err) => console.log(`unhandledRejection ${err.message}`));
process.on('uncaughtException', (err) => console.log(`uncaughtException ${err.message}`));
const meter = new Meter({ handleExit: false });
meter.middleware(async () => 'acme')({}, {}, () => {
  throw new Error('downstream bug');
});
