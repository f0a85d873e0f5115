"""The audio OpenAI's Realtime API takes (PCM16 at 24 kHz) from a 16 kHz WAV,
for the Realtime client scripts beside this file."""
import wave


def pcm24k(path):
    """The WAV's 16 kHz mono PCM16 at 24 kHz, by linear interpolation (a
    test signal, not hi-fi)."""
    with wave.open(path) as w:
        raw = w.readframes(w.getnframes())
    s16 = [int.from_bytes(raw[i:i + 2], "little", signed=True) for i in range(0, len(raw), 2)]
    out = bytearray()
    for j in range(len(s16) * 3 // 2):
        x = j * 2 / 3
        i = int(x)
        a, b = s16[i], s16[min(i + 1, len(s16) - 1)]
        out += int(a + (b - a) * (x - i)).to_bytes(2, "little", signed=True)
    return bytes(out)
