// @ts-nocheck — AudioWorkletGlobalScope has no lib types in TypeScript 5.
// The microphone on the audio thread: mixes to mono, gathers 20 ms, turns it
// into Int16 and posts it (transferred, not copied) with its peak level for
// the meter. It runs at the context's own rate — forcing 16 kHz on an
// AudioContext throws in Firefox, and the server resamples anyway. Above
// 48 kHz (the server's limit) it averages and drops samples by a whole
// factor. Its output stays silent: the user must not hear themselves.

class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.factor = Math.ceil(sampleRate / 48000);
    const rate = sampleRate / this.factor;
    const chunkMs = options.processorOptions?.chunkMs ?? 20;
    this.size = Math.round((rate * chunkMs) / 1000);
    this.chunk = new Int16Array(this.size);
    this.filled = 0;
    this.peak = 0;
    this.sum = 0;
    this.summed = 0;
    this.port.postMessage({ rate });
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    for (let i = 0; i < frames; i++) {
      let x = 0;
      for (const channel of channels) x += channel[i];
      this.sum += x / channels.length;
      if (++this.summed < this.factor) continue;
      const sample = Math.max(-1, Math.min(1, this.sum / this.factor));
      this.sum = 0;
      this.summed = 0;
      this.peak = Math.max(this.peak, Math.abs(sample));
      this.chunk[this.filled++] = sample < 0 ? sample * 0x8000 : sample * 0x7fff;
      if (this.filled === this.size) {
        const samples = this.chunk.buffer;
        // Transferred: `this.chunk` is empty (detached) after this.
        this.port.postMessage({ samples, peak: this.peak }, [samples]);
        this.chunk = new Int16Array(this.size);
        this.filled = 0;
        this.peak = 0;
      }
    }
    return true;
  }
}

registerProcessor("glagol-capture", Capture);
