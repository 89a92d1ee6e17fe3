"""Drop symbol tables and debug sections from ELF shared objects, in pure Python.

What `strip --strip-unneeded` does to a shared library, for the common layout where those
sections sit after everything the loader maps: the mapped part of the file is kept byte for
byte, the remaining non-mapped sections (``.shstrtab``, ``.comment``...) are packed after it and
a new section header table is written. The dynamic symbol table (``.dynsym``) is mapped and so
always kept. A file with any other layout (segments or mapped sections after the debug data,
as some patchelf edits leave) is left untouched. Same bytes in, same bytes out, whatever the
host's binutils: the result is part of a reproducible image.
"""

import struct
from pathlib import Path

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SHF_ALLOC, _SHF_INFO_LINK = 0x2, 0x40
_SHT_RELA, _SHT_NOBITS, _SHT_REL, _SHT_GROUP, _SHT_SYMTAB_SHNDX = 4, 8, 9, 17, 18
_ET_DYN = 3
_DROP_NAMES = (".symtab", ".strtab")
_DROP_PREFIXES = (".debug", ".zdebug")


def is_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def strip_bytes(data: bytes) -> bytes | None:
    """The stripped file, or None when there is nothing to drop or the layout is unusual."""
    try:
        return _strip(data)
    except (struct.error, ValueError, KeyError, IndexError, UnicodeDecodeError):
        return None  # truncated or odd headers: leave the file as it is


def _strip(data: bytes) -> bytes | None:
    if len(data) < _EHDR.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None  # not a 64-bit little-endian ELF
    (ident, e_type, machine, version, entry, phoff, shoff, flags, ehsize, phentsize, phnum,
     shentsize, shnum, shstrndx) = _EHDR.unpack_from(data)
    if (e_type != _ET_DYN or shentsize != _SHDR.size or shnum == 0 or shstrndx == 0
            or shstrndx >= shnum or shoff + shnum * shentsize > len(data)
            or (phnum and phentsize != _PHDR.size)):
        return None
    sections = [list(_SHDR.unpack_from(data, shoff + i * shentsize)) for i in range(shnum)]
    names_off = sections[shstrndx][4]

    def name(sec):
        start = names_off + sec[0]
        return data[start:data.index(b"\0", start)].decode("ascii", "replace")

    names = [name(s) for s in sections]
    if any(s[1] == _SHT_GROUP for s in sections):
        return None
    drop = {i for i, (n, s) in enumerate(zip(names, sections))
            if i and not s[2] & _SHF_ALLOC
            and (n in _DROP_NAMES or n.startswith(_DROP_PREFIXES))}
    if not drop:
        return None
    changed = True
    while changed:  # relocations of dropped sections, indexes of the symbol table
        changed = False
        for i, s in enumerate(sections):
            if i in drop or s[2] & _SHF_ALLOC:
                continue
            refers = {s[6]} | ({s[7]} if s[1] in (_SHT_REL, _SHT_RELA) else set())
            if s[1] in (_SHT_REL, _SHT_RELA, _SHT_SYMTAB_SHNDX) and refers & drop:
                drop.add(i)
                changed = True
    keep = [i for i in range(shnum) if i not in drop]
    if shstrndx in drop or max(i for i in range(shnum) if sections[i][2] & _SHF_ALLOC) > \
            min(drop):
        return None  # symbols in .dynsym name section indexes: only drop sections after those
    for i in keep:  # a kept section must not point at a dropped one
        s = sections[i]
        if s[6] in drop or ((s[2] & _SHF_INFO_LINK or s[1] in (_SHT_REL, _SHT_RELA))
                            and s[7] in drop):
            return None
    head = min(sections[i][4] for i in drop)
    mapped_end = max([phoff + phnum * phentsize, ehsize]
                     + [_PHDR.unpack_from(data, phoff + i * phentsize)[2]
                        + _PHDR.unpack_from(data, phoff + i * phentsize)[5]
                        for i in range(phnum)]
                     + [s[4] + s[5] for i, s in enumerate(sections)
                        if i and s[2] & _SHF_ALLOC and s[1] != _SHT_NOBITS])
    if mapped_end > head:
        return None
    out = bytearray(data[:head])
    new_index = {old: new for new, old in enumerate(keep)}
    headers = []
    for i in keep:
        s = list(sections[i])
        if i and s[1] != _SHT_NOBITS and s[4] + s[5] > head:
            if s[4] < head:
                return None  # straddles the cut
            align = max(1, s[8])
            out += b"\0" * (-len(out) % align)
            body = data[s[4]:s[4] + s[5]]
            s[4] = len(out)
            out += body
        elif i and s[1] == _SHT_NOBITS and s[4] > head:
            s[4] = len(out)
        s[6] = new_index.get(s[6], 0)
        if s[2] & _SHF_INFO_LINK or s[1] in (_SHT_REL, _SHT_RELA):
            s[7] = new_index.get(s[7], 0)
        headers.append(s)
    out += b"\0" * (-len(out) % 8)
    new_shoff = len(out)
    for s in headers:
        out += _SHDR.pack(*s)
    out[:_EHDR.size] = _EHDR.pack(ident, e_type, machine, version, entry, phoff, new_shoff,
                                  flags, ehsize, phentsize, phnum, shentsize, len(keep),
                                  new_index[shstrndx])
    return bytes(out) if len(out) < len(data) else None


def strip_file(path: Path) -> bytes | None:
    """Strip ``path`` in place (same mode); returns the new bytes (None: left as it was)."""
    stripped = strip_bytes(Path(path).read_bytes())
    if stripped is None:
        return None
    tmp = Path(f"{path}.strip-tmp")
    tmp.write_bytes(stripped)
    tmp.chmod(Path(path).stat().st_mode & 0o7777)
    tmp.replace(path)
    return stripped
