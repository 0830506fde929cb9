//! XSD validation of KITH messages with libxml2: the one module of kadgate allowed `unsafe`.
//!
//! [`SchemaSet::load`] compiles every namespace of the standards' `catalog.xml` into one libxml2
//! schema, once per process (≈ 20 ms); [`SchemaSet::validate`] parses one message and validates it
//! against that schema (≈ 140 µs for 11 KB, release build), from any number of threads at once.
//!
//! # How imports resolve (and why nothing else can load)
//!
//! The schema that is compiled is an in-memory wrapper that `xs:import`s every catalog namespace by
//! bare file name. libxml2 asks its *external entity loader* for every file it wants to open. This
//! module installs one process-wide loader (`entity_loader`) that:
//!
//! - while [`SchemaSet::load`] compiles on the current thread, maps any URL or path to the local
//!   schema file with the same last path segment (`http://www.kith.no/xmlstds/kith.xsd`,
//!   `../../felleskomponenter/kith.xsd` and `kith.xsd` all become `common/kith.xsd`), using a map
//!   that lives in a thread-local for exactly the duration of that compile;
//! - at any other time, and for any name not in the map, returns NULL: libxml2 loads nothing.
//!   A message's DTD, external entities or `xsi:schemaLocation` hints therefore never reach the
//!   file system or the network. Messages are parsed with `XML_PARSE_NONET` and without
//!   `XML_PARSE_NOENT` / `XML_PARSE_DTDLOAD`, so external entities are not even requested.
//!
//! Because the loader is process-wide, any other libxml2 use in this process is refused external
//! loads too, which is what kadgate wants.
//!
//! Errors never go to stderr: while compiling or validating, libxml2's per-thread structured error
//! handler (and the validation context's own handler) point at a collector that lives on the stack
//! of the call; the previous per-thread handler is restored afterwards.
//!
//! # Paths and messages in findings
//!
//! A finding's `path` is the element path from the validated element (`/MsgHead/MsgInfo/Sender`,
//! `[n]` when a name repeats among siblings, `/@V` for attributes), without namespace prefixes;
//! for a NAV `EI_fellesformat` envelope it starts at the KITH element inside it, as in
//! `standards/kith/VALIDATION.md`. Messages are libxml2's text with KITH namespaces shortened and
//! instance values redacted (see the `message` submodule).
//!
//! # Safety argument (why one compiled schema may serve every thread)
//!
//! - A compiled `xmlSchema` is never modified after `xmlSchemaParse` returns: validation only reads
//!   it. All mutable validation state lives in an `xmlSchemaValidCtxt`, and each thread gets its own
//!   (a `thread_local!`, see `with_valid_ctxt`), so no context is ever used by two threads. The
//!   schema is owned by an `Arc` that every thread's context also holds, so it is freed only after
//!   the last context that points into it.
//! - libxml2 (Debian's 2.9.14, built with thread support) keeps its error handlers per thread, and
//!   each message is parsed into its own `xmlDoc` with its own dictionary, created and freed within
//!   one call on one thread.
//! - The lazily initialised global tables (`xmlInitParser`, `xmlSchemaInitTypes`) are initialised
//!   inside [`SchemaSet::load`] behind a `std::sync::Once`, i.e. before any `SchemaSet` exists,
//!   hence before any thread can validate. (Call `SchemaSet::load` before spawning workers.)
//! - The entity loader is a plain function installed once (inside the same `Once`); the only state
//!   it touches is a thread-local of the compiling thread: a file map that is immutable while
//!   installed, and the set of files served (for [`SchemaSet::schema_count`]).
//! - Every callback from C is panic-free by construction and additionally wrapped in
//!   `catch_unwind`, so no unwinding crosses the FFI boundary.
#![allow(unsafe_code)]

mod catalog;
mod message;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, Once};

use libxml::bindings as ffi;

use crate::finding::{codes, Finding};

/// Inputs larger than this are refused before libxml2 sees them.
pub const MAX_INPUT_BYTES: usize = 50 * 1024 * 1024;

/// At most this many findings are kept per message (a final one says how many were dropped).
const MAX_FINDINGS: usize = 200;

/// Namespaces whose elements `EI_fellesformat` may wrap.
const KITH_NAMESPACE_PREFIXES: &[&str] =
    &["http://www.kith.no/xmlstds", "http://ehelse.no/xmlstds"];

/// Why the schema set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum XsdError {
    /// The kith folder, or one of its schema sub-folders, does not exist.
    #[error("schema folder not found: {0}")]
    MissingDir(PathBuf),
    /// `catalog.xml` or the schema files are unreadable or inconsistent.
    #[error("schema catalog: {0}")]
    Catalog(String),
    /// libxml2 refused to compile the schema set.
    #[error("schema compilation failed: {0}")]
    Compile(String),
}

/// The outcome of validating one message.
#[derive(Debug, Clone)]
pub struct XsdReport {
    /// libxml2 could parse the document.
    pub well_formed: bool,
    /// Local name of the element that was validated (the document root, or for NAV's
    /// `EI_fellesformat` envelope its first child in a KITH/ehelse namespace). None if not reached.
    pub validated_root: Option<String>,
    /// Every schema error in document order (`xsd.invalid`), or the parse errors
    /// (`xml.not-well-formed`, `xml.too-large`) when the document could not be parsed.
    pub findings: Vec<Finding>,
}

impl XsdReport {
    /// Well-formed and without a single schema error.
    pub fn schema_valid(&self) -> bool {
        self.well_formed && self.findings.is_empty()
    }

    fn not_well_formed(findings: Vec<Finding>) -> Self {
        XsdReport {
            well_formed: false,
            validated_root: None,
            findings,
        }
    }
}

/// The compiled schema. Owned through an `Arc` by the [`SchemaSet`] and by every thread's
/// validation context, so it outlives them all.
struct CompiledSchema {
    ptr: ffi::xmlSchemaPtr,
}

// SAFETY: the xmlSchema is immutable after compilation and libxml2 only reads it during
// validation (see the module's safety argument); freeing happens once, in `Drop`, when no context
// refers to it any more.
unsafe impl Send for CompiledSchema {}
// SAFETY: as above: shared access is read-only; all mutable state lives in per-thread contexts.
unsafe impl Sync for CompiledSchema {}

impl Drop for CompiledSchema {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from xmlSchemaParse, is non-null, and this is the last owner (every
        // validation context holding it has already been freed: they hold an `Arc` to us).
        unsafe { ffi::xmlSchemaFree(self.ptr) }
    }
}

/// The whole KITH schema set (every namespace in catalog.xml), compiled once per process.
pub struct SchemaSet {
    schema: Arc<CompiledSchema>,
    files: Vec<PathBuf>,
    namespaces: usize,
}

impl std::fmt::Debug for SchemaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaSet")
            .field("schema_files", &self.files.len())
            .field("namespaces", &self.namespaces)
            .finish()
    }
}

// `SchemaSet` is shared between threads (e.g. in an `Arc` in the HTTP state): it is Send + Sync
// because its only libxml2 resource, `CompiledSchema`, is (see the unsafe impls above).
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SchemaSet>();
};

/// What the entity loader may serve while a compile runs on this thread.
struct Resolver {
    files: HashMap<String, PathBuf>,
    loaded: RefCell<BTreeSet<PathBuf>>,
}

thread_local! {
    /// Set only for the duration of `SchemaSet::load`'s compile on this thread.
    static RESOLVER: RefCell<Option<Resolver>> = const { RefCell::new(None) };
    /// This thread's validation context (for the most recently used schema set).
    static VALID_CTXT: RefCell<Option<ThreadCtxt>> = const { RefCell::new(None) };
}

static INIT: Once = Once::new();

fn init_libxml() {
    INIT.call_once(|| {
        libxml::init_parser();
        // The schema built-in types are initialised lazily and, in libxml2 2.9, without a lock:
        // do it here, once, so concurrent first loads cannot race on it.
        // SAFETY: called once (inside `Once`), before any SchemaSet exists; `entity_loader` is a
        // plain function that is valid for the life of the process.
        unsafe {
            ffi::xmlSchemaInitTypes();
            ffi::xmlSetExternalEntityLoader(Some(entity_loader));
        }
    });
}

/// The process-wide external entity loader: serves schema files during a compile on this thread,
/// refuses everything else (returns NULL).
unsafe extern "C" fn entity_loader(
    url: *const c_char,
    _id: *const c_char,
    ctxt: ffi::xmlParserCtxtPtr,
) -> ffi::xmlParserInputPtr {
    if url.is_null() || ctxt.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: libxml2 passes a NUL-terminated URL that lives for the duration of this call.
    let url = unsafe { CStr::from_ptr(url) }
        .to_string_lossy()
        .into_owned();
    let local = catch_unwind(|| {
        RESOLVER
            .try_with(|r| {
                let r = r.try_borrow().ok()?;
                let r = r.as_ref()?;
                let path = r.files.get(catalog::last_segment(&url))?.clone();
                r.loaded.borrow_mut().insert(path.clone());
                Some(path)
            })
            .ok()
            .flatten()
    })
    .ok()
    .flatten();
    let Some(path) = local else {
        return ptr::null_mut();
    };
    let Ok(cpath) = CString::new(path.to_string_lossy().into_owned()) else {
        return ptr::null_mut();
    };
    // SAFETY: `ctxt` is the live parser context libxml2 handed us; `cpath` is NUL-terminated and
    // outlives the call (libxml2 copies the file name).
    unsafe { ffi::xmlNewInputFromFile(ctxt, cpath.as_ptr()) }
}

/// One error reported by libxml2, already converted (path, redacted message).
struct Collected {
    domain: c_int,
    level: ffi::xmlErrorLevel,
    line: c_int,
    column: c_int,
    path: Option<String>,
    message: String,
}

/// Where the error callbacks of one call write. Lives on the caller's stack.
struct ErrorSink {
    /// Element the validation started at (paths are relative to it); null while parsing/compiling.
    root: *const ffi::xmlNode,
    errors: Vec<Collected>,
    dropped: usize,
}

impl ErrorSink {
    fn new() -> Self {
        ErrorSink {
            root: ptr::null(),
            errors: Vec::new(),
            dropped: 0,
        }
    }

    fn errors_at_least(&self, level: ffi::xmlErrorLevel) -> impl Iterator<Item = &Collected> {
        self.errors.iter().filter(move |e| e.level >= level)
    }
}

/// Structured error callback: `user` is an `*mut ErrorSink`.
unsafe extern "C" fn collect_error(user: *mut c_void, err: ffi::xmlErrorPtr) {
    if user.is_null() || err.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `user` is the `ErrorSink` the installing call keeps alive (and exclusively
        // borrowed for libxml2) until the handler is uninstalled; `err` is valid for this call.
        let (sink, err) = unsafe { (&mut *(user as *mut ErrorSink), &*err) };
        if sink.errors.len() >= MAX_FINDINGS * 2 {
            sink.dropped += 1;
            return;
        }
        // SAFETY: libxml2's message is NUL-terminated or null.
        let raw = unsafe { cstr_lossy(err.message) };
        let node = err.node as *const ffi::xmlNode;
        let (path, values) = if node.is_null() || sink.root.is_null() {
            (None, Vec::new())
        } else {
            // SAFETY: for schema validity errors `node` points into the document being validated,
            // which is alive during validation (the only time `root` is set).
            unsafe { (Some(node_path(node, sink.root)), instance_values(node)) }
        };
        sink.errors.push(Collected {
            domain: err.domain,
            level: err.level,
            line: err.line,
            column: err.int2,
            path,
            message: message::clean(&raw, &values),
        });
    }));
}

/// # Safety
/// `p` is null or a NUL-terminated string.
unsafe fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: per the contract above.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// # Safety
/// `p` is null or a NUL-terminated string (xmlChar is UTF-8 in libxml2's trees).
unsafe fn xml_str(p: *const ffi::xmlChar) -> String {
    // SAFETY: per the contract above.
    unsafe { cstr_lossy(p as *const c_char) }
}

/// # Safety
/// `node` is a live element or attribute node.
unsafe fn same_name(a: *const ffi::xmlNode, b: *const ffi::xmlNode) -> bool {
    // SAFETY: both nodes are live (caller); names and namespaces are NUL-terminated or null.
    unsafe {
        if (*a).type_ != (*b).type_ || xml_str((*a).name) != xml_str((*b).name) {
            return false;
        }
        let href = |n: *const ffi::xmlNode| {
            let ns = (*n).ns;
            if ns.is_null() {
                String::new()
            } else {
                xml_str((*ns).href)
            }
        };
        href(a) == href(b)
    }
}

/// The element path of `node` relative to `root` (`/MsgHead/MsgInfo/Patient/DateOfBirth`).
///
/// # Safety
/// `node` and `root` are live nodes of the same document.
unsafe fn node_path(node: *const ffi::xmlNode, root: *const ffi::xmlNode) -> String {
    let mut segments: Vec<String> = Vec::new();
    let mut cur = node;
    // SAFETY: we only follow parent/sibling links of live nodes of one document; attribute nodes
    // share the node header layout (`_xmlAttr` starts with the same fields up to `prev`).
    unsafe {
        if (*cur).type_ == ffi::xmlElementType_XML_ATTRIBUTE_NODE {
            segments.push(format!("@{}", xml_str((*cur).name)));
            cur = (*cur).parent;
        }
        while !cur.is_null() && (*cur).type_ != ffi::xmlElementType_XML_ELEMENT_NODE {
            cur = (*cur).parent;
        }
        while !cur.is_null() && (*cur).type_ == ffi::xmlElementType_XML_ELEMENT_NODE {
            let mut index = 1;
            let mut repeated = false;
            let mut sib = (*cur).prev as *const ffi::xmlNode;
            while !sib.is_null() {
                if same_name(sib, cur) {
                    index += 1;
                    repeated = true;
                }
                sib = (*sib).prev;
            }
            let mut sib = (*cur).next as *const ffi::xmlNode;
            while !repeated && !sib.is_null() {
                repeated = same_name(sib, cur);
                sib = (*sib).next;
            }
            let name = xml_str((*cur).name);
            segments.push(if repeated {
                format!("{name}[{index}]")
            } else {
                name
            });
            if cur == root {
                break;
            }
            cur = (*cur).parent;
        }
    }
    segments.reverse();
    format!("/{}", segments.join("/"))
}

/// The texts at an error location that libxml2 may quote: the node's own text content and, for an
/// element, its attribute values.
///
/// # Safety
/// `node` is a live element or attribute node.
unsafe fn instance_values(node: *const ffi::xmlNode) -> Vec<String> {
    const MAX_VALUE: usize = 64 * 1024;
    let mut values = Vec::new();
    // SAFETY: live nodes of one document; text nodes carry NUL-terminated `content`.
    unsafe {
        let mut text = String::new();
        let mut child = (*node).children as *const ffi::xmlNode;
        while !child.is_null() && text.len() < MAX_VALUE {
            if (*child).type_ == ffi::xmlElementType_XML_TEXT_NODE
                || (*child).type_ == ffi::xmlElementType_XML_CDATA_SECTION_NODE
            {
                text.push_str(&xml_str((*child).content));
            }
            child = (*child).next;
        }
        values.push(text);
        if (*node).type_ == ffi::xmlElementType_XML_ELEMENT_NODE {
            let mut attr = (*node).properties as *const ffi::xmlNode;
            while !attr.is_null() {
                // SAFETY (layout): `_xmlAttr` shares the `_xmlNode` header up to `prev`.
                values.extend(instance_values(attr));
                attr = (*attr).next;
            }
        }
    }
    values.retain(|v| !v.trim().is_empty());
    values
}

/// Installs `collect_error` as this thread's structured error handler; restores the previous one
/// on drop.
struct ThreadErrors {
    saved_handler: ffi::xmlStructuredErrorFunc,
    saved_data: *mut c_void,
}

impl ThreadErrors {
    /// # Safety
    /// `sink` must stay alive (and not be moved) until the guard is dropped.
    unsafe fn install(sink: *mut ErrorSink) -> Self {
        // SAFETY: the accessors return this thread's handler slots (libxml2 is initialised);
        // the new handler's data outlives the guard per the contract above.
        unsafe {
            let saved = ThreadErrors {
                saved_handler: *ffi::__xmlStructuredError(),
                saved_data: *ffi::__xmlStructuredErrorContext(),
            };
            ffi::xmlSetStructuredErrorFunc(sink as *mut c_void, Some(collect_error));
            saved
        }
    }
}

impl Drop for ThreadErrors {
    fn drop(&mut self) {
        // SAFETY: restores exactly what was installed before on this thread.
        unsafe { ffi::xmlSetStructuredErrorFunc(self.saved_data, self.saved_handler) }
    }
}

/// One thread's validation context for one compiled schema.
struct ThreadCtxt {
    vctxt: ffi::xmlSchemaValidCtxtPtr,
    // Declared after `vctxt` and freed after it in `Drop`: keeps the schema alive.
    schema: Arc<CompiledSchema>,
}

impl ThreadCtxt {
    fn new(schema: &Arc<CompiledSchema>) -> Option<Self> {
        // SAFETY: the schema pointer is a live compiled schema (kept alive by the Arc we store).
        let vctxt = unsafe { ffi::xmlSchemaNewValidCtxt(schema.ptr) };
        (!vctxt.is_null()).then(|| ThreadCtxt {
            vctxt,
            schema: Arc::clone(schema),
        })
    }
}

impl Drop for ThreadCtxt {
    fn drop(&mut self) {
        // SAFETY: `vctxt` was created by xmlSchemaNewValidCtxt and is used by this thread only;
        // the schema it points to is still alive (we hold an Arc until after this).
        unsafe { ffi::xmlSchemaFreeValidCtxt(self.vctxt) }
    }
}

/// Runs `f` with this thread's validation context for `schema` (creating or replacing it as
/// needed). Falls back to a temporary context if the thread-local is unavailable (thread teardown,
/// re-entrancy). Returns None if libxml2 cannot allocate a context.
fn with_valid_ctxt<R>(
    schema: &Arc<CompiledSchema>,
    f: impl FnOnce(ffi::xmlSchemaValidCtxtPtr) -> R,
) -> Option<R> {
    let mut f = Some(f);
    let cached = VALID_CTXT.try_with(|slot| {
        let mut slot = slot.try_borrow_mut().ok()?;
        let reuse = slot
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.schema, schema));
        if !reuse {
            *slot = None; // free the old context before making a new one
            *slot = Some(ThreadCtxt::new(schema)?);
        }
        let ctxt = slot.as_ref()?;
        let f = f.take()?;
        Some(f(ctxt.vctxt))
    });
    if let Ok(Some(r)) = cached {
        return Some(r);
    }
    let f = f.take()?;
    let temp = ThreadCtxt::new(schema)?;
    Some(f(temp.vctxt))
}

/// Owns one parsed message document.
struct Doc(ffi::xmlDocPtr);

impl Drop for Doc {
    fn drop(&mut self) {
        // SAFETY: the pointer came from xmlReadMemory, is non-null and owned only by us.
        unsafe { ffi::xmlFreeDoc(self.0) }
    }
}

impl SchemaSet {
    /// Loads and compiles every namespace of `kith_dir/catalog.xml`.
    ///
    /// `kith_dir` is the standards' kith folder (e.g. /work/shared/standards/kith). It is only
    /// read: nothing is written or copied, and nothing is fetched from the network.
    pub fn load(kith_dir: &Path) -> Result<SchemaSet, XsdError> {
        if !kith_dir.is_dir() {
            return Err(XsdError::MissingDir(kith_dir.to_path_buf()));
        }
        let entries = catalog::read_catalog(kith_dir)?;
        let files = catalog::index_schema_files(kith_dir)?;
        for e in &entries {
            let expected = kith_dir.join(&e.rel_path);
            match files.get(e.file_name()) {
                Some(p) if p == &expected => {}
                _ => {
                    return Err(XsdError::Catalog(format!(
                        "catalog maps {} to {}, which is not among the indexed schema files",
                        e.namespace, e.rel_path
                    )))
                }
            }
        }
        let wrapper = catalog::wrapper_schema(&entries);
        let Ok(wrapper_len) = c_int::try_from(wrapper.len()) else {
            return Err(XsdError::Catalog("wrapper schema too large".into()));
        };

        init_libxml();
        let mut sink = ErrorSink::new();
        let installed = RESOLVER.with(|r| {
            let mut r = r.borrow_mut();
            if r.is_some() {
                return false;
            }
            *r = Some(Resolver {
                files,
                loaded: RefCell::new(BTreeSet::new()),
            });
            true
        });
        if !installed {
            return Err(XsdError::Compile(
                "SchemaSet::load re-entered on one thread".into(),
            ));
        }
        let schema_ptr = {
            // SAFETY: `sink` lives until the end of this function, after the guard drops.
            let _errors = unsafe { ThreadErrors::install(&mut sink) };
            // SAFETY: `wrapper` outlives the parser context (freed below before `wrapper` drops);
            // the sink pointer stays valid while the context exists; everything runs on this
            // thread, where RESOLVER holds the file map for the entity loader.
            unsafe {
                let pctxt =
                    ffi::xmlSchemaNewMemParserCtxt(wrapper.as_ptr() as *const c_char, wrapper_len);
                if pctxt.is_null() {
                    ptr::null_mut()
                } else {
                    ffi::xmlSchemaSetParserStructuredErrors(
                        pctxt,
                        Some(collect_error),
                        &mut sink as *mut ErrorSink as *mut c_void,
                    );
                    let schema = ffi::xmlSchemaParse(pctxt);
                    ffi::xmlSchemaFreeParserCtxt(pctxt);
                    schema
                }
            }
        };
        let resolver = RESOLVER.with(|r| r.borrow_mut().take());
        if schema_ptr.is_null() {
            let msgs: Vec<String> = sink
                .errors_at_least(ffi::xmlErrorLevel_XML_ERR_ERROR)
                .take(10)
                .map(|e| e.message.clone())
                .collect();
            return Err(XsdError::Compile(if msgs.is_empty() {
                "libxml2 returned no schema".into()
            } else {
                msgs.join("; ")
            }));
        }
        let schema = Arc::new(CompiledSchema { ptr: schema_ptr });
        let files: Vec<PathBuf> = resolver
            .map(|r| r.loaded.into_inner().into_iter().collect())
            .unwrap_or_default();
        Ok(SchemaSet {
            schema,
            files,
            namespaces: entries.len(),
        })
    }

    /// Number of schema files loaded (for /readyz and logs).
    pub fn schema_count(&self) -> usize {
        self.files.len()
    }

    /// Validate one message given as the raw bytes received (UTF-8 or ISO-8859-1 as declared).
    /// Thread-safe; callable concurrently from many threads. Never panics on any input.
    pub fn validate(&self, xml: &[u8]) -> XsdReport {
        if xml.len() > MAX_INPUT_BYTES {
            return XsdReport::not_well_formed(vec![Finding::error(
                codes::XML_TOO_LARGE,
                "/",
                format!(
                    "document of {} bytes exceeds the {} byte limit",
                    xml.len(),
                    MAX_INPUT_BYTES
                ),
            )]);
        }
        let Ok(len) = c_int::try_from(xml.len()) else {
            return XsdReport::not_well_formed(vec![Finding::error(
                codes::XML_TOO_LARGE,
                "/",
                "document too large",
            )]);
        };

        // Parse.
        let mut sink = ErrorSink::new();
        let doc = {
            // SAFETY: `sink` outlives the guard.
            let _errors = unsafe { ThreadErrors::install(&mut sink) };
            // No network, no DTD loading, no entity substitution; small strings stored inside the
            // nodes (fewer allocations; the tree is only read).
            let options = (ffi::xmlParserOption_XML_PARSE_NONET
                | ffi::xmlParserOption_XML_PARSE_COMPACT) as c_int;
            // SAFETY: `xml` is valid for `len` bytes during the call; no URL or encoding override;
            // the options load no DTD and substitute no entities; the entity loader refuses all.
            let p = unsafe {
                ffi::xmlReadMemory(
                    xml.as_ptr() as *const c_char,
                    len,
                    ptr::null(),
                    ptr::null(),
                    options,
                )
            };
            (!p.is_null()).then_some(Doc(p))
        };
        let parse_errors: Vec<Finding> = sink
            .errors_at_least(ffi::xmlErrorLevel_XML_ERR_ERROR)
            .filter(|e| {
                e.domain == ffi::xmlErrorDomain_XML_FROM_PARSER as c_int
                    || e.domain == ffi::xmlErrorDomain_XML_FROM_NAMESPACE as c_int
                    || doc.is_none()
            })
            .map(|e| {
                let message = if e.line > 0 {
                    format!("line {}, column {}: {}", e.line, e.column, e.message)
                } else {
                    e.message.clone()
                };
                Finding::error(codes::XML_NOT_WELL_FORMED, "/", message)
            })
            .collect();
        let mut parse_errors = parse_errors;
        // libxml2 repeats some errors (e.g. one "entity reference loop" per expansion attempt).
        parse_errors.dedup_by(|a, b| a.message == b.message);
        let Some(doc) = doc else {
            let mut findings = parse_errors;
            if xml.is_empty() {
                findings.push(Finding::error(
                    codes::XML_NOT_WELL_FORMED,
                    "/",
                    "the document is empty",
                ));
            } else if findings.is_empty() {
                findings.push(Finding::error(
                    codes::XML_NOT_WELL_FORMED,
                    "/",
                    "the document could not be parsed",
                ));
            }
            return XsdReport::not_well_formed(findings);
        };
        if !parse_errors.is_empty() {
            // Parsed, but not namespace-well-formed (e.g. an undeclared prefix).
            return XsdReport::not_well_formed(parse_errors);
        }

        // Choose the element to validate.
        // SAFETY: `doc` is a live document owned by this call.
        let root = unsafe { ffi::xmlDocGetRootElement(doc.0) };
        if root.is_null() {
            return XsdReport::not_well_formed(vec![Finding::error(
                codes::XML_NOT_WELL_FORMED,
                "/",
                "the document has no root element",
            )]);
        }
        // SAFETY: `root` is a live element of `doc`.
        let root_name = unsafe { xml_str((*root).name) };
        let target = if root_name == "EI_fellesformat" {
            // SAFETY: `root` is a live element of `doc`.
            let child = unsafe { first_kith_child(root) };
            if child.is_null() {
                return XsdReport {
                    well_formed: true,
                    validated_root: None,
                    findings: vec![Finding::error(
                        codes::XSD_INVALID,
                        "/EI_fellesformat",
                        "EI_fellesformat contains no element in a KITH or ehelse namespace",
                    )],
                };
            }
            child
        } else {
            root
        };
        // SAFETY: `target` is a live element of `doc`.
        let target_name = unsafe { xml_str((*target).name) };

        // Validate.
        sink = ErrorSink::new();
        sink.root = target;
        let sink_ptr: *mut ErrorSink = &mut sink;
        let rc = with_valid_ctxt(&self.schema, |vctxt| {
            // SAFETY: `sink` outlives the guard and the context's handler registration, which is
            // removed again before returning.
            let _errors = unsafe { ThreadErrors::install(sink_ptr) };
            // SAFETY: `vctxt` is this thread's context for our schema; `doc`/`target` are alive for
            // the whole call; the handler data is reset before the sink goes away.
            unsafe {
                ffi::xmlSchemaSetValidStructuredErrors(
                    vctxt,
                    Some(collect_error),
                    sink_ptr as *mut c_void,
                );
                let rc = if target == root {
                    ffi::xmlSchemaValidateDoc(vctxt, doc.0)
                } else {
                    ffi::xmlSchemaValidateOneElement(vctxt, target)
                };
                ffi::xmlSchemaSetValidStructuredErrors(vctxt, None, ptr::null_mut());
                rc
            }
        });
        drop(doc);

        let mut findings: Vec<Finding> = Vec::new();
        let mut dropped = sink.dropped;
        for e in sink.errors_at_least(ffi::xmlErrorLevel_XML_ERR_ERROR) {
            if findings.len() >= MAX_FINDINGS {
                dropped += 1;
                continue;
            }
            let path = e.path.clone().unwrap_or_else(|| format!("/{target_name}"));
            let message = if e.message.contains("entity reference in the node-tree") {
                // libxml2's validator cannot see through entity references (we never expand them).
                "the document uses entity references, which schema validation does not accept"
                    .to_string()
            } else {
                e.message.clone()
            };
            findings.push(Finding::error(codes::XSD_INVALID, path, message));
        }
        if dropped > 0 {
            findings.push(Finding::error(
                codes::XSD_INVALID,
                format!("/{target_name}"),
                format!("{dropped} further schema error(s) not listed"),
            ));
        }
        match rc {
            None => findings.push(Finding::error(
                codes::XSD_INVALID,
                format!("/{target_name}"),
                "could not create a schema validation context",
            )),
            Some(rc) if rc != 0 && findings.is_empty() => findings.push(Finding::error(
                codes::XSD_INVALID,
                format!("/{target_name}"),
                if rc < 0 {
                    "schema validation failed internally (e.g. unexpanded entity references)"
                        .to_string()
                } else {
                    "the document is not valid against the schema".to_string()
                },
            )),
            _ => {}
        }
        XsdReport {
            well_formed: true,
            validated_root: Some(target_name),
            findings,
        }
    }
}

/// The first child element of `parent` in a KITH/ehelse namespace, or null.
///
/// # Safety
/// `parent` is a live element.
unsafe fn first_kith_child(parent: *const ffi::xmlNode) -> ffi::xmlNodePtr {
    // SAFETY: walking the children list of a live element; hrefs are NUL-terminated.
    unsafe {
        let mut child = (*parent).children;
        while !child.is_null() {
            if (*child).type_ == ffi::xmlElementType_XML_ELEMENT_NODE && !(*child).ns.is_null() {
                let href = xml_str((*(*child).ns).href);
                if KITH_NAMESPACE_PREFIXES.iter().any(|p| href.starts_with(p)) {
                    return child;
                }
            }
            child = (*child).next;
        }
    }
    ptr::null_mut()
}
