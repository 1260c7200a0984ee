// The calls of the zero-code apps: a plain and a streamed call for tenant acme, then one for a tenant whose limit
// (set through the default Meter) refuses it. Prints what refused it, and DONE.
exports.zeroCodeCalls = async function zeroCodeCalls(meter, client) {
  const messages = [{ role: 'user', content: 'hi' }];
  await meter.setLimit('capped', { limitUsd: 0, frequency: 'per_day' });
  await meter.forTenant('acme', () => client.chat.completions.create({ model: 'gpt-4o', messages }));
  const stream = await meter.forTenant('acme', () => client.chat.completions.create({ model: 'gpt-4o', messages, stream: true }));
  for await (const _chunk of stream);
  const refusal = await meter.forTenant('capped', () => client.chat.completions.create({ model: 'gpt-4o', messages })).catch((err) => err);
  console.log(`REFUSED ${refusal?.name}`);
  console.log('DONE');
};
