"""Real voice files for the tests, made with Debian's encoders: AMR-NB
with opencore-amrnb (libopencore-amrnb0, the library wxkf decodes with),
in the "#!AMR\\n" storage format WeChat sends voice in; Speex wideband
with libspeex (libspeex1, the same), framed with a header byte per block
(audio/x-speex-with-header-byte, WeChat's speex) or bare 60-byte frames;
and MP3 with LAME (libmp3lame0), a format an agent may send. All are sine
tones.

    python3 test/sim/audio.py OUT.amr|OUT.spx|OUT.mp3 [SECONDS [HZ]]
"""
import ctypes
import ctypes.util
import math
import sys

RATE = 8000
FRAME = 160          # AMR: samples in 20 ms
MR122 = 7            # AMR mode 12.2 kbit/s: 32-byte frames


def _load(name, soname):
    return ctypes.CDLL(ctypes.util.find_library(name) or soname)


def _pcm(n, start, hz, amplitude, rate=RATE):
    return [int(amplitude * math.sin(2 * math.pi * hz * (start + i) / rate))
            for i in range(n)]


def tone(seconds=1.0, hz=440, mode=MR122, amplitude=8000):
    """The AMR bytes of a sine tone of `seconds` (a multiple of 20 ms)."""
    lib = _load('opencore-amrnb', 'libopencore-amrnb.so.0')
    lib.Encoder_Interface_init.restype = ctypes.c_void_p
    lib.Encoder_Interface_init.argtypes = [ctypes.c_int]
    lib.Encoder_Interface_exit.argtypes = [ctypes.c_void_p]
    lib.Encoder_Interface_Encode.restype = ctypes.c_int
    lib.Encoder_Interface_Encode.argtypes = [
        ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_short),
        ctypes.POINTER(ctypes.c_ubyte), ctypes.c_int]
    enc = lib.Encoder_Interface_init(0)
    out = bytearray(b'#!AMR\n')
    try:
        buf = (ctypes.c_ubyte * 64)()
        for f in range(int(round(seconds * 1000 / 20))):
            pcm = (ctypes.c_short * FRAME)(*_pcm(FRAME, f * FRAME, hz,
                                                 amplitude))
            n = lib.Encoder_Interface_Encode(enc, mode, pcm, buf, 0)
            if n <= 0:
                raise RuntimeError('AMR encoder failed')
            out += bytes(buf[:n])
    finally:
        lib.Encoder_Interface_exit(enc)
    return bytes(out)


SPEEX_MODEID_WB = 1
SPEEX_SET_QUALITY = 4
SPEEX_RATE = 16000
SPEEX_FRAME = 320    # wideband: samples in 20 ms


def tone_speex(seconds=1.0, hz=440, header_byte=True, quality=7,
               amplitude=8000):
    """The Speex wideband bytes of a sine tone of `seconds` (a multiple of
    20 ms), one frame a block: with a length byte in front of each
    (header_byte) or bare. Quality 7 makes 60-byte frames."""
    lib = _load('speex', 'libspeex.so.1')
    lib.speex_lib_get_mode.restype = ctypes.c_void_p
    lib.speex_lib_get_mode.argtypes = [ctypes.c_int]
    lib.speex_encoder_init.restype = ctypes.c_void_p
    lib.speex_encoder_init.argtypes = [ctypes.c_void_p]
    lib.speex_encoder_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                      ctypes.c_void_p]
    lib.speex_encoder_destroy.argtypes = [ctypes.c_void_p]
    bits = ctypes.create_string_buffer(128)     # SpeexBits is 48 bytes
    for f in ('speex_bits_init', 'speex_bits_reset', 'speex_bits_destroy'):
        getattr(lib, f).argtypes = [ctypes.c_void_p]
    lib.speex_encode_int.argtypes = [ctypes.c_void_p,
                                     ctypes.POINTER(ctypes.c_short),
                                     ctypes.c_void_p]
    lib.speex_bits_write.restype = ctypes.c_int
    lib.speex_bits_write.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                     ctypes.c_int]
    enc = lib.speex_encoder_init(lib.speex_lib_get_mode(SPEEX_MODEID_WB))
    q = ctypes.c_int(quality)
    lib.speex_encoder_ctl(enc, SPEEX_SET_QUALITY, ctypes.byref(q))
    lib.speex_bits_init(bits)
    out = bytearray()
    try:
        buf = ctypes.create_string_buffer(256)
        for f in range(int(round(seconds * 1000 / 20))):
            pcm = (ctypes.c_short * SPEEX_FRAME)(
                *_pcm(SPEEX_FRAME, f * SPEEX_FRAME, hz, amplitude,
                      SPEEX_RATE))
            lib.speex_bits_reset(bits)
            lib.speex_encode_int(enc, pcm, bits)
            n = lib.speex_bits_write(bits, buf, 255)
            if n <= 0:
                raise RuntimeError('Speex encoder failed')
            if header_byte:
                out.append(n)
            out += buf.raw[:n]
    finally:
        lib.speex_bits_destroy(bits)
        lib.speex_encoder_destroy(enc)
    return bytes(out)


def tone_mp3(seconds=1.0, hz=440, rate=16000, kbps=32, amplitude=8000):
    """The MP3 bytes (mono, constant bitrate, no tag) of a sine tone."""
    lib = _load('mp3lame', 'libmp3lame.so.0')
    lib.lame_init.restype = ctypes.c_void_p
    for f in ('lame_set_in_samplerate', 'lame_set_out_samplerate',
              'lame_set_num_channels', 'lame_set_mode', 'lame_set_brate',
              'lame_set_bWriteVbrTag'):
        getattr(lib, f).argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.lame_init_params.argtypes = [ctypes.c_void_p]
    lib.lame_encode_buffer.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(ctypes.c_short),
        ctypes.POINTER(ctypes.c_short), ctypes.c_int,
        ctypes.POINTER(ctypes.c_ubyte), ctypes.c_int]
    lib.lame_encode_flush.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte), ctypes.c_int]
    lib.lame_close.argtypes = [ctypes.c_void_p]
    g = lib.lame_init()
    try:
        lib.lame_set_in_samplerate(g, rate)
        lib.lame_set_out_samplerate(g, rate)
        lib.lame_set_num_channels(g, 1)
        lib.lame_set_mode(g, 3)                 # MONO
        lib.lame_set_brate(g, kbps)
        lib.lame_set_bWriteVbrTag(g, 0)
        if lib.lame_init_params(g) < 0:
            raise RuntimeError('lame_init_params failed')
        n = int(seconds * rate)
        pcm = (ctypes.c_short * n)(*_pcm(n, 0, hz, amplitude, rate))
        cap = n + n // 4 + 7200
        buf = (ctypes.c_ubyte * cap)()
        got = lib.lame_encode_buffer(g, pcm, pcm, n, buf, cap)
        if got < 0:
            raise RuntimeError('lame_encode_buffer failed')
        out = bytes(buf[:got])
        got = lib.lame_encode_flush(g, buf, cap)
        if got < 0:
            raise RuntimeError('lame_encode_flush failed')
        return out + bytes(buf[:got])
    finally:
        lib.lame_close(g)


if __name__ == '__main__':
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    hz = float(sys.argv[3]) if len(sys.argv) > 3 else 440
    make = (tone_mp3 if sys.argv[1].endswith('.mp3') else
            tone_speex if sys.argv[1].endswith('.spx') else tone)
    with open(sys.argv[1], 'wb') as f:
        f.write(make(secs, hz))
