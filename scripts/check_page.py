#!/usr/bin/env python3
"""Check a headless-Chromium run of an HTML page: no console messages (the audit pages log
nothing, so any message is an error) and a screenshot that is not blank.

    check_page.py SCREENSHOT.png CHROMIUM_STDERR.log [--expect-console-error]
"""
import struct
import sys
import zlib


def pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8, f"{path}: bit depth {depth}"
            channels = {2: 3, 6: 4, 0: 1, 4: 2}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def main():
    png, log = sys.argv[1], sys.argv[2]
    expect_error = "--expect-console-error" in sys.argv
    console = [l for l in open(log, errors="replace") if "CONSOLE" in l or "Uncaught" in l]
    if expect_error:
        if not console:
            sys.exit(f"{log}: the control page's console error was not seen: the check could not fail")
        print("console check works (control page error seen)")
        return
    if console:
        sys.exit(f"console messages on the page:\n{''.join(console)}")
    width, height, channels, rows = pixels(png)
    background = rows[0][:channels]
    differing = sum(1 for r in rows for x in range(0, len(r), channels) if r[x:x + channels] != background)
    share = differing / (width * height)
    print(f"screenshot {width}x{height}: {share:.1%} of pixels differ from the background")
    if share < 0.02:
        sys.exit(f"{png}: the page looks blank")


if __name__ == "__main__":
    main()
