(module
  (type (;0;) (func (param i32 i32) (result i32)))
  (import "env" "memory" (memory (;0;) 0))
  (export "tb0" (func 0))
  (func (;0;) (type 0) (param i32 i32) (result i32)
    (local i64 i64 i64 i64)
    block ;; label = @1
      block ;; label = @2
        i64.const 0
        local.set 2
        i64.const 0
        local.set 3
        loop ;; label = @3
          block ;; label = @4
            local.get 0
            i64.load offset=16 align=1
            local.set 4
            local.get 3
            local.get 4
            i64.ge_u
            br_if 2 (;@2;)
            i64.const 0
            local.set 5
            loop ;; label = @5
              local.get 5
              local.get 3
              i64.ge_u
              br_if 1 (;@4;)
              local.get 2
              local.get 5
              i64.add
              local.set 2
              local.get 2
              i64.const 100
              i64.gt_u
              br_if 4 (;@1;)
              local.get 5
              i64.const 1
              i64.add
              local.set 5
              br 0 (;@5;)
            end
          end
          local.get 3
          i64.const 1
          i64.add
          local.set 3
          br 0 (;@3;)
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
    end
    local.get 0
    local.get 2
    i64.store offset=8 align=1
    local.get 1
    i64.const 1
    i64.store
    i32.const 0
    return
    unreachable
  )
)
