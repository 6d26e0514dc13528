#pragma once

namespace tessera {

// Call first thing in main(). OpenMP threads busy-wait between parallel regions by default,
// which steals the cores from everything else on a desktop and, on a busy machine, from the
// engine's own next region (measured: a 6848×1280 bf16 GEMV took 7 ms instead of 1.1 ms on a
// loaded 2-core machine). The runtime reads its wait policy once at start-up, so the process
// re-executes itself once with OMP_WAIT_POLICY=PASSIVE unless the user chose a policy.
void preferPassiveThreadWaits(char** argv);

}  // namespace tessera
