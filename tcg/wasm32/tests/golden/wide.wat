(module
  (type (;0;) (func (param i32 i32) (result i32)))
  (import "env" "memory" (memory (;0;) 0))
  (export "tb0" (func 0))
  (func (;0;) (type 0) (param i32 i32) (result i32)
    (local i64 i64 i64 i64 i64 i64 i32 i32 i32)
    local.get 0
    i64.load offset=8 align=1
    local.set 2
    local.get 0
    i64.load offset=16 align=1
    local.set 3
    local.get 2
    local.set 4
    local.get 3
    local.set 5
    local.get 4
    local.get 5
    i64.mul
    local.get 4
    i64.const 4294967295
    i64.and
    local.get 5
    i64.const 32
    i64.shr_u
    i64.mul
    local.set 6
    local.get 4
    i64.const 32
    i64.shr_u
    local.get 5
    i64.const 4294967295
    i64.and
    i64.mul
    local.set 7
    local.get 4
    i64.const 32
    i64.shr_u
    local.get 5
    i64.const 32
    i64.shr_u
    i64.mul
    local.get 6
    i64.const 32
    i64.shr_u
    i64.add
    local.get 7
    i64.const 32
    i64.shr_u
    i64.add
    local.get 4
    i64.const 4294967295
    i64.and
    local.get 5
    i64.const 4294967295
    i64.and
    i64.mul
    i64.const 32
    i64.shr_u
    local.get 6
    i64.const 4294967295
    i64.and
    i64.add
    local.get 7
    i64.const 4294967295
    i64.and
    i64.add
    i64.const 32
    i64.shr_u
    i64.add
    local.get 4
    i64.const 63
    i64.shr_s
    local.get 5
    i64.and
    i64.sub
    local.get 5
    i64.const 63
    i64.shr_s
    local.get 4
    i64.and
    i64.sub
    local.set 3
    local.set 2
    local.get 0
    i32.load offset=24 align=1
    local.set 8
    local.get 8
    local.set 9
    local.get 8
    local.set 10
    local.get 10
    i32.eqz
    if (result i32) ;; label = @1
      i32.const 0
    else
      local.get 10
      i32.const -1
      i32.eq
      if (result i32) ;; label = @2
        i32.const 0
        local.get 9
        i32.sub
      else
        local.get 9
        local.get 10
        i32.div_s
      end
    end
    local.set 8
    local.get 0
    local.get 2
    i64.store offset=8 align=1
    local.get 0
    local.get 3
    i64.store offset=16 align=1
    local.get 0
    local.get 8
    i32.store offset=24 align=1
    local.get 1
    i64.const 0
    i64.store
    i32.const 0
    return
    unreachable
  )
)
