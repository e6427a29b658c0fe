//! One instance of a module kept warm and never reset, to time the guest code alone:
//! without the reset, fuel set-up, input copy and output copy of
//! `weir_runtime::LoadedModule::call`. Built with the runtime's compiler settings
//! ([`runtime_settings`]: Cranelift, `OptLevel::Speed`, fuel metering on) unless told
//! otherwise, so a setting can be tried on the guest before the runtime takes it.

use crate::{err, BenchError};
use wasmtime::{Caller, Linker, Memory, Module, OptLevel, Store, Strategy, TypedFunc};
use weir_compiler::evaluate::Lists;
use weir_compiler::interp::{Hook, HostLists};

/// The compiler settings of `weir_runtime::Engine` that shape the guest's machine code.
pub fn runtime_settings() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config
        .strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .consume_fuel(true);
    config
}

pub struct Warm {
    store: Store<Lists>,
    memory: Memory,
    base: usize,
    hooks: Vec<TypedFunc<(i32, i32), i64>>,
}

impl Warm {
    /// Compiles `wasm` under `config` and instantiates it once, with a function handle
    /// per hook call of `hooks` (in that order) and practically unlimited fuel.
    pub fn new(
        config: &wasmtime::Config,
        wasm: &[u8],
        lists: Lists,
        hooks: &[Hook],
    ) -> Result<Warm, BenchError> {
        let engine = wasmtime::Engine::new(config).map_err(|e| err("engine", e))?;
        let module = Module::new(&engine, wasm).map_err(|e| err("compile", e))?;
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap(
                "weir",
                "list_contains",
                |caller: Caller<'_, Lists>, list: i32, value: i64| -> i32 {
                    // The guest's i32 is an unsigned list id.
                    i32::from(HostLists::contains(caller.data(), list as u32, value))
                },
            )
            .map_err(|e| err("link", e))?;
        let mut store = Store::new(&engine, lists);
        store.set_fuel(u64::MAX / 2).map_err(|e| err("fuel", e))?;
        let instance = linker
            .instantiate(&mut store, &module)
            .map_err(|e| err("instantiate", e))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| err("exports", "no memory"))?;
        let base = instance
            .get_global(&mut store, "input_base")
            .and_then(|g| g.get(&mut store).i32())
            .ok_or_else(|| err("exports", "no input_base"))?;
        let base = usize::try_from(base).map_err(|e| err("input_base", e))?;
        let hooks = hooks
            .iter()
            .map(|hook| {
                instance
                    .get_typed_func::<(i32, i32), i64>(&mut store, hook.export_name())
                    .map_err(|e| err(hook.export_name(), e))
            })
            .collect::<Result<_, _>>()?;
        Ok(Warm {
            store,
            memory,
            base,
            hooks,
        })
    }

    /// Writes a hook's input where the module expects it, growing memory if needed.
    pub fn write(&mut self, input: &[u8]) -> Result<(), BenchError> {
        const PAGE: usize = 64 * 1024;
        let needed = self.base + input.len() + PAGE;
        let size = self.memory.data_size(&self.store);
        if needed > size {
            let pages = (needed - size).div_ceil(PAGE) as u64;
            self.memory
                .grow(&mut self.store, pages)
                .map_err(|e| err("grow", e))?;
        }
        self.memory
            .write(&mut self.store, self.base, input)
            .map_err(|e| err("write", e))
    }

    /// Calls hook call `index` on the `len` input bytes last written; the packed output.
    pub fn call(&mut self, index: usize, len: usize) -> Result<i64, BenchError> {
        let hook = self
            .hooks
            .get(index)
            .ok_or_else(|| err("call", "no such hook call"))?;
        let (base, len) = (
            i32::try_from(self.base).map_err(|e| err("base", e))?,
            i32::try_from(len).map_err(|e| err("len", e))?,
        );
        hook.call(&mut self.store, (base, len))
            .map_err(|e| err("call", e))
    }

    /// The output words of a call.
    pub fn output(&self, packed: i64) -> Result<Vec<i64>, BenchError> {
        let packed = packed as u64;
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let bytes = self
            .memory
            .data(&self.store)
            .get(ptr..ptr.saturating_add(len))
            .ok_or_else(|| err("output", "outside memory"))?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| {
                let mut word = [0; 8];
                word.copy_from_slice(c);
                i64::from_le_bytes(word)
            })
            .collect())
    }

    /// Fuel left in the store.
    pub fn fuel(&self) -> Result<u64, BenchError> {
        self.store.get_fuel().map_err(|e| err("fuel", e))
    }
}
