(module
  (type (;0;) (func (param i32 i32) (result i32)))
  (import "env" "memory" (memory (;0;) 0))
  (export "tb0" (func 0))
  (func (;0;) (type 0) (param i32 i32) (result i32)
    (local i64 i64)
    block ;; label = @1
      i64.const 0
      local.set 2
      loop ;; label = @2
        local.get 0
        i64.load offset=16 align=1
        local.set 3
        local.get 3
        i64.eqz
        br_if 1 (;@1;)
        local.get 2
        local.get 3
        i64.add
        local.set 2
        local.get 3
        i64.const 1
        i64.sub
        local.set 3
        local.get 0
        local.get 3
        i64.store offset=16 align=1
        br 0 (;@2;)
      end
    end
    local.get 0
    local.get 2
    i64.store offset=8 align=1
    local.get 1
    i64.const 0
    i64.store
    i32.const 0
    return
    unreachable
  )
)
