"""A real AMR-NB file for the tests: a sine tone encoded with Debian's
opencore-amrnb encoder (libopencore-amrnb0, the library wxkf decodes
with), in the "#!AMR\\n" storage format WeChat sends voice in.

    python3 test/sim/amr.py OUT.amr [SECONDS [HZ]]
"""
import ctypes
import ctypes.util
import math
import sys

RATE = 8000
FRAME = 160          # samples in 20 ms
MR122 = 7            # mode 12.2 kbit/s: 32-byte frames


def _lib():
    name = ctypes.util.find_library('opencore-amrnb') or \
        'libopencore-amrnb.so.0'
    lib = ctypes.CDLL(name)
    lib.Encoder_Interface_init.restype = ctypes.c_void_p
    lib.Encoder_Interface_init.argtypes = [ctypes.c_int]
    lib.Encoder_Interface_exit.argtypes = [ctypes.c_void_p]
    lib.Encoder_Interface_Encode.restype = ctypes.c_int
    lib.Encoder_Interface_Encode.argtypes = [
        ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_short),
        ctypes.POINTER(ctypes.c_ubyte), ctypes.c_int]
    return lib


def tone(seconds=1.0, hz=440, mode=MR122, amplitude=8000):
    """The AMR bytes of a sine tone of `seconds` (a multiple of 20 ms)."""
    lib = _lib()
    enc = lib.Encoder_Interface_init(0)
    out = bytearray(b'#!AMR\n')
    try:
        frames = int(round(seconds * 1000 / 20))
        pcm = (ctypes.c_short * FRAME)()
        buf = (ctypes.c_ubyte * 64)()
        for f in range(frames):
            for i in range(FRAME):
                t = (f * FRAME + i) / RATE
                pcm[i] = int(amplitude * math.sin(2 * math.pi * hz * t))
            n = lib.Encoder_Interface_Encode(enc, mode, pcm, buf, 0)
            if n <= 0:
                raise RuntimeError('AMR encoder failed')
            out += bytes(buf[:n])
    finally:
        lib.Encoder_Interface_exit(enc)
    return bytes(out)


if __name__ == '__main__':
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    hz = float(sys.argv[3]) if len(sys.argv) > 3 else 440
    with open(sys.argv[1], 'wb') as f:
        f.write(tone(secs, hz))
