fn main() {
    // Debug info lets slint's testing backend find elements by id; it adds
    // names only, no paths, so release bytes stay reproducible.
    let config = slint_build::CompilerConfiguration::new().with_debug_info(true);
    slint_build::compile_with_config("ui/main.slint", config).expect("compiling ui/main.slint");
}
