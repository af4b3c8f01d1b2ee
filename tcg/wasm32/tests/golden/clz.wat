(module
  (type (;0;) (func (param i32 i32) (result i32)))
  (import "env" "memory" (memory (;0;) 0))
  (export "tb0" (func 0))
  (func (;0;) (type 0) (param i32 i32) (result i32)
    (local i32 i64 i64)
    local.get 0
    i32.load offset=24 align=1
    local.set 2
    local.get 2
    i32.clz
    i32.const 32
    local.get 2
    select
    local.set 2
    local.get 0
    i64.load offset=8 align=1
    local.set 3
    local.get 0
    i64.load offset=16 align=1
    local.set 4
    local.get 3
    i64.clz
    local.get 4
    local.get 3
    i64.const 0
    i64.ne
    select
    local.set 3
    local.get 0
    local.get 3
    i64.store offset=8 align=1
    local.get 0
    local.get 2
    i32.store offset=24 align=1
    local.get 1
    i64.const 0
    i64.store
    i32.const 0
    return
    unreachable
  )
)
