//! Any bytes as a report under each carriage control: a PDF or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sixstack_txt2pdf::{CarriageControl, Options};

fuzz_target!(|data: &[u8]| {
    let cc = match data.first().map(|b| b % 3) {
        Some(0) => CarriageControl::Asa,
        Some(1) => CarriageControl::Machine,
        _ => CarriageControl::None,
    };
    let opts = Options {
        carriage_control: cc,
        ..Options::default()
    };
    let _ = sixstack_txt2pdf::convert(data, &opts);
});
