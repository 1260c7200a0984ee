// The canned provider responses the bench answers calls with, in-process (a client `fetch`, no sockets): shared by
// run.mjs and overhead.mjs so both time the same SDK work.

export class AgentMisbehaved extends Error {}

export const STREAM_CHUNKS = 100;
export const CREATED = 1_730_000_000;
export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'x-request-id': 'req_bench0002' };

/** An SSE body: a frame per `{ event?, data }` (data JSON-encoded unless already a string), lines ended by `eol`. */
export function sseBody(frames, eol = '\n') {
  const frame = ({ event, data }) =>
    `${event === undefined ? '' : `event: ${event}${eol}`}data: ${typeof data === 'string' ? data : JSON.stringify(data)}${eol}${eol}`;
  return frames.map(frame).join('');
}

/** A client's `fetch` that answers every request in-process with the same SSE body. */
export const sseFetch = (body) => async () => new Response(body, { headers: SSE_HEADERS });

/**
 * Iterates a stream to its end. Both sides must hand the caller the same items: `expected` of them for which `counts`
 * holds (the agent may add a request option, never an item the caller sees).
 */
export async function drain(stream, counts, expected, what) {
  let seen = 0;
  for await (const item of stream) if (counts(item)) seen++;
  if (seen !== expected) throw new AgentMisbehaved(`the caller saw ${seen} ${what}, not ${expected}`);
}

// ---- openai

export const USAGE = {
  prompt_tokens: 412,
  completion_tokens: 118,
  total_tokens: 530,
  prompt_tokens_details: { cached_tokens: 256, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};

export const COMPLETION_BODY = JSON.stringify({
  id: 'chatcmpl-bench0001',
  object: 'chat.completion',
  created: CREATED,
  model: 'gpt-4o-2024-08-06',
  choices: [
    {
      index: 0,
      message: {
        role: 'assistant',
        content: 'Your invoice total is $1,284.50, due on 15 March. The two largest items are the annual support plan and seat upgrades.',
        refusal: null,
        annotations: [],
      },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: USAGE,
  service_tier: 'default',
  system_fingerprint: 'fp_bench01',
});

export function chunk(index, delta, finishReason, includeUsage) {
  const body = {
    id: 'chatcmpl-bench0002',
    object: 'chat.completion.chunk',
    created: CREATED,
    model: 'gpt-4o-mini-2024-07-18',
    service_tier: 'default',
    system_fingerprint: 'fp_bench02',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
  // With include_usage the API puts `usage: null` on every chunk, and the usage on a last chunk of its own.
  return includeUsage ? { ...body, usage: null } : body;
}

/** The SSE body of a 100-chunk chat stream, as the API sends it with or without `stream_options.include_usage`. */
export function streamBody(includeUsage) {
  const chunks = Array.from({ length: STREAM_CHUNKS }, (_, i) => {
    if (i === 0) return chunk(i, { role: 'assistant', content: '', refusal: null }, null, includeUsage);
    if (i === STREAM_CHUNKS - 1) return chunk(i, {}, 'stop', includeUsage);
    return chunk(i, { content: ` word${i}` }, null, includeUsage);
  });
  if (includeUsage) chunks.push({ ...chunk(0, {}, null, false), choices: [], usage: USAGE });
  return sseBody([...chunks.map((data) => ({ data })), { data: '[DONE]' }]);
}

export const STREAM_BODY = { withUsage: streamBody(true), withoutUsage: streamBody(false) };
export const JSON_HEADERS = { 'content-type': 'application/json', 'x-request-id': 'req_bench0001' };

/** The client's `fetch`: answers in-process, streaming usage only when the request asked for it (as the agent does). */
export async function fakeFetch(_url, init) {
  const request = JSON.parse(init.body);
  if (request.stream !== true) return new Response(COMPLETION_BODY, { headers: JSON_HEADERS });
  const body = request.stream_options?.include_usage === true ? STREAM_BODY.withUsage : STREAM_BODY.withoutUsage;
  return new Response(body, { headers: SSE_HEADERS });
}

export const MESSAGES = [
  { role: 'system', content: 'You are a billing assistant. Answer in two sentences.' },
  { role: 'user', content: 'What do I owe this month, and what are the largest items?' },
];

export const ANTHROPIC_MODEL = 'claude-sonnet-4-6';
export const ANTHROPIC_USAGE = { input_tokens: 156, cache_creation_input_tokens: 0, cache_read_input_tokens: 256, output_tokens: 118 };

/** A 100-delta Messages stream: usage on message_start (output provisional) and, cumulative, on message_delta. */
export function anthropicStreamBody() {
  const message = {
    id: 'msg_bench0003',
    type: 'message',
    role: 'assistant',
    model: ANTHROPIC_MODEL,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { ...ANTHROPIC_USAGE, output_tokens: 1, service_tier: 'standard' },
  };
  const events = [
    { type: 'message_start', message },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    ...Array.from({ length: STREAM_CHUNKS }, (_, i) => ({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ` word${i}` } })),
    { type: 'content_block_stop', index: 0 },
    { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: ANTHROPIC_USAGE },
    { type: 'message_stop' },
  ];
  return sseBody(events.map((data) => ({ event: data.type, data })));
}


export const GEMINI_MODEL = 'gemini-2.5-flash';
export const GEMINI_USAGE = { promptTokenCount: 412, candidatesTokenCount: 118, totalTokenCount: 530, cachedContentTokenCount: 256 };

/** A 100-chunk streamGenerateContent body (the Gemini API frames it with CRLF); usageMetadata on the last chunk only. */
export function geminiStreamBody() {
  const chunks = Array.from({ length: STREAM_CHUNKS }, (_, i) => {
    const last = i === STREAM_CHUNKS - 1;
    const candidate = { content: { role: 'model', parts: [{ text: ` word${i}` }] }, index: 0, ...(last ? { finishReason: 'STOP' } : {}) };
    return { candidates: [candidate], ...(last ? { usageMetadata: GEMINI_USAGE } : {}), modelVersion: GEMINI_MODEL, responseId: 'resp_bench0004' };
  });
  return sseBody(chunks.map((data) => ({ data })), '\r\n');
}

// genai 3.x takes a `fetch` in httpOptions (it is typed there: HttpOptions.fetch), which its apiCall uses instead of
