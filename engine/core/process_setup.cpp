#include "core/process_setup.h"

#include <cstdlib>

#include <unistd.h>

namespace tessera {

void preferPassiveThreadWaits(char** argv)
{
    if (std::getenv("OMP_WAIT_POLICY"))
        return;
    if (::setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0)
        return;
    ::execv("/proc/self/exe", argv);
    // exec failed (no /proc?): carry on with the default policy.
}

}  // namespace tessera
