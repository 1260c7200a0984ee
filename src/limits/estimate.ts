/**
 * What a request's input can cost at most, measured before the provider has counted anything. Text is measured in
 * UTF-8 bytes: no tokenizer of these providers makes a token shorter than one byte, whatever the script. Media parts
 * (images, audio, video, documents) are counted by kind, for a per-item ceiling; input the request cannot bound at all
 * (server-side conversation state, files of unknown size) marks the measure unbounded.
 */
export const MEDIA_KINDS = ['image', 'audio', 'video', 'document'] as const;
export type MediaKind = (typeof MEDIA_KINDS)[number];

/** A provider's reading of one object of its request params: a media part, input it cannot bound, or neither. */
export type InputPart = MediaKind | 'unbounded' | undefined;
export type InputClassifier = (part: Record<string, unknown>) => InputPart;

export interface InputMeasure {
  /** UTF-8 bytes of every key and string outside media parts. */
  bytes: number;
  /** UTF-16 code units of the same, for the average-based (lenient) estimate. */
  chars: number;
  /** Objects and arrays: each may cost a few tokens of framing (roles, separators). */
  containers: number;
  media: Record<MediaKind, number>;
  /** The request refers to input whose size it does not carry. */
  unbounded: boolean;
  /** Tool definitions: providers add a system prompt of their own for them. */
  tools: boolean;
  /** The request asks for prompt caching (`cache_control`): cache writes, dearer than input, may be billed. */
  cacheWrites: boolean;
}

/** Deeper than any real request; past it the measure gives up and calls the input unbounded. */
const MAX_DEPTH = 64;

/** Only plain data is walked: an upload, a stream or a signal is not text the model reads, and may be a large graph. */
function isPlainData(value: object): boolean {
  if (Array.isArray(value)) return true;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

export function measureInput(params: unknown, classify: InputClassifier): InputMeasure {
  const measure: InputMeasure = { bytes: 0, chars: 0, containers: 0, media: { image: 0, audio: 0, video: 0, document: 0 }, unbounded: false, tools: false, cacheWrites: false };
  const text = (value: string): void => {
    measure.bytes += Buffer.byteLength(value, 'utf8');
    measure.chars += value.length;
  };
  const visit = (value: unknown, depth: number): void => {
    if (typeof value === 'string') return text(value);
    if (typeof value === 'number' || typeof value === 'boolean') return text(String(value));
    if (value === null || typeof value !== 'object' || !isPlainData(value)) return;
    if (depth > MAX_DEPTH) {
      measure.unbounded = true;
      return;
    }
    measure.containers++;
    if (Array.isArray(value)) {
      for (const item of value) visit(item, depth + 1);
      return;
    }
    const part = classify(value as Record<string, unknown>);
    if (part === 'unbounded') measure.unbounded = true;
    else if (part !== undefined) {
      measure.media[part]++;
      return;
    }
    for (const key of Object.keys(value)) {
      const item = (value as Record<string, unknown>)[key];
      if (key === 'tools' && Array.isArray(item) && item.length > 0) measure.tools = true;
      else if (key === 'cache_control') measure.cacheWrites = true;
      text(key);
      visit(item, depth + 1);
    }
  };
  visit(params, 0);
  return measure;
}

/** The media kind of a MIME type (Gemini's inlineData / fileData parts). */
export function mediaKindOf(mimeType: unknown): MediaKind {
  if (typeof mimeType !== 'string') return 'document';
  if (mimeType.startsWith('image/')) return 'image';
  if (mimeType.startsWith('audio/')) return 'audio';
  if (mimeType.startsWith('video/')) return 'video';
  return 'document';
}
