/* A test-only stand-in for Windows 10's bcryptprimitives.dll!ProcessPrng, which Rust's std
 * calls for random bytes and Debian bookworm's wine 8 does not have (wine 9 does). It asks
 * advapi32's RtlGenRandom (SystemFunction036), which wine has. Installed into the test's own
 * wine prefix only (tests/bundle/tests/bundle.rs); never part of a bundle. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
