(module
  (type (;0;) (func (param i32 i32) (result i32)))
  (type (;1;) (func (param i32 i64 i64 i64 i64 i64) (result i64)))
  (import "env" "memory" (memory (;0;) 0))
  (import "fn" "1" (func (;0;) (type 1) (param i32 i64 i64 i64 i64 i64) (result i64)))
  (export "tb0" (func 1))
  (func (;1;) (type 0) (param i32 i32) (result i32)
    (local i64 i32)
    local.get 0
    i64.load offset=16 align=1
    local.set 2
    local.get 0
    local.get 2
    i64.const 9
    i64.const 0
    i64.const 0
    i64.const 0
    call 0
    i32.wrap_i64
    i32.extend16_s
    local.set 3
    local.get 0
    i32.load
    if ;; label = @1
      local.get 0
      i32.const 0
      i32.store
      local.get 1
      i64.const 0
      i64.store
      i32.const 3
      return
    end
    local.get 0
    local.get 3
    i32.store offset=24 align=1
    local.get 1
    i64.const 0
    i64.store
    i32.const 0
    return
    unreachable
  )
)
