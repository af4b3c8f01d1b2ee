//! The wasm32 backend with the TLB fast path inlined (run by its embedded engine) against tables that
//! [`SoftMmu`] fills: the flag bits softmmu sets (MMIO, code pages) must send generated code to the slow path
//! on every access, not only on the first.
//!
//! Only flagged pages can be tested this way: the embedded engine runs modules in a linear memory of its own,
//! where a native addend means nothing, so a RAM page that hit the fast path would read the wrong bytes. On a
//! real wasm32 host addends are linear-memory addresses and RAM pages hit (the backend's own tests cover the
//! fast path on hand-filled tables).

use std::cell::RefCell;
use std::mem::offset_of;
use std::rc::Rc;
use std::sync::Arc;

use rqemu_include::tlb::{tlb_index, TLB_NOTDIRTY};
use rqemu_include::{MemOp, MmuIdx};
use rqemu_softmmu::{AddressSpace, CodeWrite, IdentityFill, MmioDevice, RamBlock, SoftMmu, TlbTables};
use rqemu_tcg::parse::parse;
use rqemu_tcg::prepare::prepare;
use rqemu_tcg::{Backend, ExecContext, TargetDesc, TbExit, Type};
use rqemu_tcg_wasm32::engine::EmbeddedWasm32;
use rqemu_tcg_wasm32::TlbAbi;

#[repr(C)]
struct Cpu {
    fault: u32,
    _pad: u32,
    x0: u64,
    x1: u64,
    x2: u64,
    tlb: TlbTables,
}

const DEV: u64 = 0xfe00_0000;

/// Counts reads (answered with 0x10) and remembers the last write.
#[derive(Default)]
struct Counter {
    reads: u32,
    last_write: u64,
}

impl MmioDevice for Counter {
    fn read(&mut self, _offset: u64, _size: u32) -> u64 {
        self.reads += 1;
        0x10
    }
    fn write(&mut self, _offset: u64, _size: u32, value: u64) {
        self.last_write = value;
    }
}

fn target() -> Arc<TargetDesc> {
    let mut t = TargetDesc::new(0);
    t.add_global("x0", Type::I64, 8);
    t.add_global("x1", Type::I64, 16);
    t.add_global("x2", Type::I64, 24);
    t.env_size = core::mem::size_of::<Cpu>();
    Arc::new(t)
}

#[test]
fn flagged_pages_take_the_slow_path_from_inlined_code() {
    let mut space = AddressSpace::new();
    let ram = space.add_ram(RamBlock::new(0x10_0000).unwrap());
    space.map_ram(0, 0x10_0000, ram, 0).unwrap();
    let dev = Rc::new(RefCell::new(Counter::default()));
    space.map_mmio(DEV, 0x1000, Box::new(dev.clone())).unwrap();
    let cpu = Box::into_raw(Box::new(Cpu {
        fault: 0,
        _pad: 0,
        x0: 0,
        x1: DEV,
        x2: 0x2008,
        tlb: TlbTables::EMPTY,
    }));
    // SAFETY: `cpu` outlives `mmu` (freed at the end) and no reference into it exists while `mmu` runs.
    let mut mmu = unsafe {
        SoftMmu::with_tables(
            space,
            core::ptr::NonNull::new_unchecked(&raw mut (*cpu).tlb),
            IdentityFill::default(),
        )
    };
    let hooks = Rc::new(RefCell::new(Vec::new()));
    let log = hooks.clone();
    mmu.set_code_write_hook(Box::new(move |paddr, len, _| {
        log.borrow_mut().push((paddr, len));
        CodeWrite::Keep
    }));
    mmu.set_code_page(0x2000);

    let mut engine = EmbeddedWasm32::new();
    engine.set_tlb(Some(TlbAbi {
        offset_from_env: offset_of!(Cpu, tlb) as i32,
    }));
    let mut f = parse(
        target(),
        "insn_start 0x0, 0x0, 0x0\nqemu_ld_i64 x0, x1, leuq, 0\nadd_i64 x0, x0, $0x1\n\
         qemu_st_i64 x0, x2, leuq, 0\nexit_tb 0x0\n",
    )
    .unwrap();
    prepare(&mut f).unwrap();
    let tb = engine.compile(&f).unwrap();

    for round in 1..=3u32 {
        let mut ctx = ExecContext {
            env: cpu.cast(),
            mem: &mut mmu,
        };
        // SAFETY: `env` is a `Cpu`, the target's layout and size.
        assert_eq!(unsafe { tb.run(&mut ctx) }, TbExit::Exit(0), "{:?}", engine.last_trap());
        assert_eq!(dev.borrow().reads, round, "every MMIO read reaches the device");
        assert_eq!(
            hooks.borrow().len(),
            round as usize,
            "every store to the code page calls the hook"
        );
    }
    assert_eq!(hooks.borrow()[0], (0x2008, 8));
    assert_eq!(mmu.load(0x2008, MemOp::LEUQ, MmuIdx::default()), Ok(0x11));
    // SAFETY: `cpu` is valid; a copy of one entry is read.
    let write_tag = unsafe { (*cpu).tlb.modes[0][tlb_index(0x2000)].addr_write };
    assert_eq!(write_tag, 0x2000 | TLB_NOTDIRTY);
    drop(mmu);
    // SAFETY: from `Box::into_raw` above; `mmu` is gone.
    drop(unsafe { Box::from_raw(cpu) });
}
