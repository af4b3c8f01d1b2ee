(module
  (type (;0;) (func (param i32 i32) (result i32)))
  (type (;1;) (func (param i32 i64 i64 i64 i64 i64) (result i64)))
  (import "env" "memory" (memory (;0;) 0))
  (import "env" "table" (table (;0;) 0 funcref))
  (export "tb0" (func 0))
  (func (;0;) (type 0) (param i32 i32) (result i32)
    (local i64 i32 i64 i64)
    local.get 0
    i64.extend_i32_u
    local.set 2
    loop ;; label = @1
      block ;; label = @2
        block ;; label = @3
          block ;; label = @4
            local.get 3
            br_table 0 (;@4;) 1 (;@3;) 0 (;@4;)
          end
          i64.const 0
          local.set 4
        end
        local.get 0
        i64.load offset=16 align=1
        local.set 5
        local.get 5
        i64.eqz
        br_if 0 (;@2;)
        local.get 4
        local.get 5
        i64.add
        local.set 4
        local.get 5
        i64.const 1
        i64.sub
        local.set 5
        local.get 0
        local.get 5
        i64.store offset=16 align=1
        i32.const 1
        local.set 3
        br 1 (;@1;)
      end
      local.get 0
      local.get 4
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
