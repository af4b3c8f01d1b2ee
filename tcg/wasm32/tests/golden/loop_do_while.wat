(module
  (type (;0;) (func (param i32 i32) (result i32)))
  (import "env" "memory" (memory (;0;) 0))
  (export "tb0" (func 0))
  (func (;0;) (type 0) (param i32 i32) (result i32)
    (local i32 i32 i32 i32 i64)
    i32.const 0
    local.set 2
    i32.const 1
    local.set 3
    loop ;; label = @1
      local.get 2
      local.get 3
      i32.add
      local.set 4
      local.get 3
      local.set 2
      local.get 4
      local.set 3
      local.get 0
      i32.load offset=24 align=1
      local.set 5
      local.get 5
      i32.const 1
      i32.sub
      local.set 5
      local.get 0
      local.get 5
      i32.store offset=24 align=1
      local.get 5
      i32.const 0
      i32.ne
      br_if 0 (;@1;)
      local.get 2
      i64.extend_i32_u
      local.set 6
      local.get 0
      local.get 6
      i64.store offset=8 align=1
      local.get 1
      i64.const 0
      i64.store
      i32.const 0
      return
    end
    unreachable
  )
)
