(module
  (type (;0;) (func (param i32 i32) (result i32)))
  (import "env" "memory" (memory (;0;) 0))
  (export "tb0" (func 0))
  (func (;0;) (type 0) (param i32 i32) (result i32)
    (local i64 i32 i32 i64)
    local.get 0
    i64.load offset=16 align=1
    local.set 2
    local.get 2
    i32.wrap_i64
    local.set 3
    local.get 0
    i32.load offset=24 align=1
    local.set 4
    i32.const 51
    local.get 4
    local.get 3
    select
    local.set 4
    local.get 4
    i32.const 52
    local.get 3
    select
    local.set 4
    local.get 0
    i64.load offset=8 align=1
    local.set 5
    local.get 5
    i64.const 53
    local.get 2
    i64.eqz
    select
    local.set 5
    local.get 0
    local.get 5
    i64.store offset=8 align=1
    local.get 0
    local.get 4
    i32.store offset=24 align=1
    local.get 1
    i64.const 0
    i64.store
    i32.const 0
    return
    unreachable
  )
)
