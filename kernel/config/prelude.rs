// Run by the "Rust (dynsim)" kernel after init.evcxr: dynsim's prelude (store, selections,
// comparisons, metric specs, statistics, metrics, polars) and the notebook displays.
use dynsim_kernel::prelude::*;
