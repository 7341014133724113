fn main() {
    // Debug info lets slint's testing backend find elements by id; it adds
    // names only, no paths, so release bytes stay reproducible.
    // Translations are compiled in (no gettext, no files to find at run time),
    // and without a per-component context so one catalogue entry serves every
    // screen that shows the same words.
    let config = slint_build::CompilerConfiguration::new()
        .with_debug_info(true)
        .with_bundled_translations("lang")
        .with_default_translation_context(slint_build::DefaultTranslationContext::None);
    println!("cargo:rerun-if-changed=lang");
    slint_build::compile_with_config("ui/main.slint", config).expect("compiling ui/main.slint");
}
