//! Shared set-up of the fuzz targets.

/// libfuzzer-sys aborts on every panic, caught or not. polars panics on some damaged
/// files and `read_dataset` turns those panics into errors, so the dataset targets let
/// panics raised inside polars unwind; any other panic still aborts, and one that escapes
/// the parser aborts in the `fuzz_target!` wrapper.
pub fn let_polars_panics_unwind() {
    let abort_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.location().is_some_and(|l| l.file().contains("/polars")) {
            abort_hook(info);
        }
    }));
}
