//! In a browser: a page that goes away (closed, reloaded, navigated from)
//! closes its meshes, so their peers hear a goodbye (the player left for good)
//! rather than silence (the player may be behind a partition, and the others
//! may have to wait for it).

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

use crate::pump::Shared;

/// Closes the mesh behind `shared` on the window's `pagehide` event, if the
/// mesh still lives then.
pub(crate) fn close_on_page_hide(shared: &Shared) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let weak = shared.downgrade();
    let on_hide = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
        if let Some(shared) = Shared::upgrade(&weak) {
            shared.lock().close();
        }
    });
    let _ = window.add_event_listener_with_callback("pagehide", on_hide.as_ref().unchecked_ref());
    // The listener lives as long as the page.
    on_hide.forget();
}
