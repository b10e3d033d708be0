"""Function names of a stripped Go executable, read from its .gopclntab.

Release builds of nats-server carry no ELF symbol table, so `perf` shows
bare addresses for them; the Go runtime's own function table (kept in every
Go binary, Go 1.20+ layout) still names every function. `GoSymbols(path)`
maps an address to the function that holds it.
"""

import bisect
import struct

MAGIC_GO_1_20 = 0xFFFFFFF1


def _section(data, wanted):
    """(address, offset, size) of the ELF64 section called `wanted`."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def header(i):
        return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
    names_offset = header(shstrndx)[4]
    for i in range(shnum):
        name, _, _, addr, offset, size = header(i)
        end = data.index(b"\0", names_offset + name)
        if data[names_offset + name:end].decode() == wanted:
            return addr, offset, size
    raise ValueError(f"no {wanted} section")


class GoSymbols:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        _, base, _ = _section(data, ".gopclntab")
        magic, _, _, _, ptr = struct.unpack_from("<IBBBB", data, base)
        if magic != MAGIC_GO_1_20 or ptr != 8:
            raise ValueError(f"unsupported pclntab (magic {magic:#x})")
        nfunc, _, text, names, _, _, _, functab = struct.unpack_from("<8Q", data, base + 8)
        if text == 0:
            # The linker leaves textStart to be set at run time: the text
            # section's own address.
            text = _section(data, ".text")[0]
        starts, labels = [], []
        for i in range(nfunc):
            entry, func = struct.unpack_from("<II", data, base + functab + 8 * i)
            name_off, = struct.unpack_from("<i", data, base + functab + func + 4)
            start = base + names + name_off
            labels.append(data[start:data.index(b"\0", start)].decode(errors="replace"))
            starts.append(text + entry)
        order = sorted(range(nfunc), key=starts.__getitem__)
        self.starts = [starts[i] for i in order]
        self.labels = [labels[i] for i in order]

    def name(self, address):
        i = bisect.bisect_right(self.starts, address) - 1
        return self.labels[i] if i >= 0 else None


if __name__ == "__main__":
    import sys
    symbols = GoSymbols(sys.argv[1])
    for a in sys.argv[2:]:
        print(a, symbols.name(int(a, 16)))
