//! End to end: TBs on the tci backend whose `qemu_ld`/`qemu_st` go through a [`SoftMmu`] whose TLB tables are
//! embedded in the CPU state, as a target will do it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rqemu_include::tlb::{tlb_index, TLB_MMIO};
use rqemu_include::MmuIdx;
use rqemu_softmmu::{AddressSpace, IdentityFill, MmioDevice, RamBlock, SoftMmu, TlbTables};
use rqemu_tcg::parse::parse;
use rqemu_tcg::prepare::prepare;
use rqemu_tcg::{CompiledTb, ExecContext, Func, TargetDesc, TbExit, Type};
use rqemu_tcg_tci::Tci;

/// A CPU state: fault word, three registers, then the TLB.
#[repr(C)]
struct Cpu {
    fault: u32,
    _pad: u32,
    x0: u64,
    x1: u64,
    x2: u64,
    tlb: TlbTables,
}

const UART: u64 = 0xfe00_0000;

/// Remembers the last value written; reads return 0x5a.
struct Latch(u64);

impl MmioDevice for Latch {
    fn read(&mut self, _offset: u64, _size: u32) -> u64 {
        0x5a
    }
    fn write(&mut self, offset: u64, _size: u32, value: u64) {
        self.0 = offset << 32 | value;
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

fn func(text: &str) -> Func {
    let mut f = parse(target(), text).expect("test IR parses");
    prepare(&mut f).expect("test IR is valid");
    f
}

/// Loads a u64 at `x1`, adds one, stores it at `x2`; the store is guest instruction 1.
const LOAD_ADD_STORE: &str = "insn_start 0x0, 0x0, 0x0
qemu_ld_i64 x0, x1, leuq, 0
add_i64 x0, x0, $0x1
insn_start 0x8, 0x0, 0x0
qemu_st_i64 x0, x2, leuq, 0
exit_tb 0x0
";

struct Machine {
    cpu: *mut Cpu,
    latch: Rc<RefCell<Latch>>,
    mmu: SoftMmu<IdentityFill>,
}

impl Machine {
    fn new() -> Machine {
        let mut space = AddressSpace::new();
        let ram = space.add_ram(RamBlock::new(0x10_0000).unwrap());
        space.map_ram(0, 0x10_0000, ram, 0).unwrap();
        let latch = Rc::new(RefCell::new(Latch(0)));
        space.map_mmio(UART, 0x1000, Box::new(latch.clone())).unwrap();
        let cpu = Box::into_raw(Box::new(Cpu {
            fault: 0,
            _pad: 0,
            x0: 0,
            x1: 0,
            x2: 0,
            tlb: TlbTables::EMPTY,
        }));
        // SAFETY: `cpu` lives until `Machine` drops (after `mmu`, which is dropped first below).
        let tables = unsafe { core::ptr::NonNull::new_unchecked(&raw mut (*cpu).tlb) };
        // SAFETY: as above; nothing holds a reference into `cpu` while `mmu` runs.
        let mmu = unsafe { SoftMmu::with_tables(space, tables, IdentityFill::default()) };
        Machine { cpu, latch, mmu }
    }

    fn run(&mut self, tb: &dyn CompiledTb, x1: u64, x2: u64) -> TbExit {
        // SAFETY: `cpu` is valid; the writes go through the raw pointer.
        unsafe {
            (*self.cpu).x1 = x1;
            (*self.cpu).x2 = x2;
        }
        let mut ctx = ExecContext {
            env: self.cpu.cast(),
            mem: &mut self.mmu,
        };
        // SAFETY: `env` is a `Cpu`, the target's layout.
        unsafe { tb.run(&mut ctx) }
    }

    fn x0(&self) -> u64 {
        // SAFETY: `cpu` is valid.
        unsafe { (*self.cpu).x0 }
    }

    fn read_tag(&self, vaddr: u64) -> u64 {
        // SAFETY: `cpu` is valid; a copy is read.
        unsafe { (*self.cpu).tlb.modes[0][tlb_index(vaddr)].addr_read }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // SAFETY: from `Box::into_raw` in `new`; `mmu` no longer touches the tables after this point.
        drop(unsafe { Box::from_raw(self.cpu) });
    }
}

#[test]
fn tci_load_add_store_through_softmmu() {
    let tb = Tci::new().compile_tb(&func(LOAD_ADD_STORE)).unwrap();
    let mut m = Machine::new();
    m.mmu.space_mut().write_bytes(0x1000, &41u64.to_le_bytes());
    assert_eq!(m.run(&tb, 0x1000, 0x2ffc), TbExit::Exit(0), "page-crossing store");
    assert_eq!(m.x0(), 42);
    assert_eq!(
        m.mmu.load(0x2ffc, rqemu_include::MemOp::LEUQ, MmuIdx::default()),
        Ok(42)
    );
    assert_eq!(m.read_tag(0x1000), 0x1000, "the fill landed in the CPU state's tables");
}

#[test]
fn tci_fault_in_softmmu_ends_the_tb_at_the_right_instruction() {
    let tb = Tci::new().compile_tb(&func(LOAD_ADD_STORE)).unwrap();
    let mut m = Machine::new();
    m.mmu.fill_mut().limit = 0x8000_0000;
    assert_eq!(m.run(&tb, 0x1000, 0x8000_0000), TbExit::Fault { insn: 1 });
    let f = m.mmu.fill().last_fault.unwrap();
    assert_eq!(f.vaddr, 0x8000_0000);
}

#[test]
fn tci_mmio_through_softmmu() {
    let tb = Tci::new().compile_tb(&func(LOAD_ADD_STORE)).unwrap();
    let mut m = Machine::new();
    assert_eq!(m.run(&tb, UART, UART + 0x10), TbExit::Exit(0));
    assert_eq!(m.x0(), 0x5b);
    assert_eq!(
        m.latch.borrow().0,
        0x10 << 32 | 0x5b,
        "offset and value reached the device"
    );
    assert_eq!(m.read_tag(UART) & TLB_MMIO, TLB_MMIO);
}
