//! Any bytes through the Wyoming event reader (header line, data section,
//! payload, limits), as a client's connection delivers them: events or a
//! typed error, never a panic; and every event read writes back to bytes
//! that read as the same event (unless that outgrows a limit).
#![no_main]

use glagol_server::wyoming::codec::{encode, read_event, ReadError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut r = tokio::io::BufReader::new(data);
        while let Ok(Some(event)) = read_event(&mut r).await {
            let bytes = encode(&event.kind, Some(&event.data), event.payload.as_deref());
            let mut again = tokio::io::BufReader::new(&bytes[..]);
            match read_event(&mut again).await {
                // Merged inline and section data may outgrow a limit.
                Err(ReadError::TooLarge { .. }) => {}
                back => assert_eq!(back.ok().flatten().as_ref(), Some(&event)),
            }
        }
    });
});
