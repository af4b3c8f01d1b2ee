(module
  (type (;0;) (func (param i32 i32) (result i32)))
  (type (;1;) (func (param i32 i64 i64 i64 i64 i64) (result i64)))
  (import "env" "memory" (memory (;0;) 0))
  (import "fn" "7" (func (;0;) (type 1) (param i32 i64 i64 i64 i64 i64) (result i64)))
  (export "tb0" (func 1))
  (export "tb1" (func 2))
  (func (;1;) (type 0) (param i32 i32) (result i32)
    (local i64 i64)
    local.get 0
    i64.load offset=16 align=1
    local.set 2
    local.get 0
    local.get 2
    i64.const 0
    i64.const 0
    i64.const 0
    i64.const 0
    call 0
    local.set 3
    local.get 0
    i32.load
    if ;; label = @1
      local.get 1
      i64.const 0
      i64.store
      i32.const 3
      return
    end
    local.get 0
    local.get 3
    i64.store offset=8 align=1
    local.get 0
    local.get 1
    return_call 2
    unreachable
  )
  (func (;2;) (type 0) (param i32 i32) (result i32)
    local.get 1
    i64.const 1
    i64.store
    i32.const 0
    return
    unreachable
  )
)
