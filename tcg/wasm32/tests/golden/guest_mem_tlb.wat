(module
  (type (;0;) (func (param i32 i32) (result i32)))
  (type (;1;) (func (param i32 i64 i64 i64 i64 i64) (result i64)))
  (import "env" "memory" (memory (;0;) 0))
  (import "fn" "1" (func (;0;) (type 1) (param i32 i64 i64 i64 i64 i64) (result i64)))
  (import "fn" "2" (func (;1;) (type 1) (param i32 i64 i64 i64 i64 i64) (result i64)))
  (export "tb0" (func 2))
  (func (;2;) (type 0) (param i32 i32) (result i32)
    (local i64 i32 i64 i64 i32 i32)
    local.get 0
    i64.load offset=16 align=1
    local.set 2
    local.get 2
    i64.const 12
    i64.shr_u
    i32.wrap_i64
    i32.const 255
    i32.and
    i32.const 5
    i32.shl
    local.get 0
    i32.add
    i32.const 8448
    i32.add
    local.set 3
    local.get 2
    i64.const 7
    i64.add
    i64.const -4096
    i64.and
    local.get 3
    i64.load
    i64.eq
    if (result i64) ;; label = @1
      local.get 2
      i32.wrap_i64
      local.get 3
      i32.load offset=24
      i32.add
      i64.load align=1
    else
      local.get 0
      local.get 2
      i64.const 259
      i64.const 0
      i64.const 0
      i64.const 0
      call 0
      local.set 4
      local.get 0
      i32.load
      if ;; label = @2
        local.get 0
        i32.const 0
        i32.store
        local.get 1
        i64.const 0
        i64.store
        i32.const 3
        return
      end
      local.get 4
    end
    local.set 5
    local.get 0
    local.get 5
    i64.store offset=8 align=1
    local.get 0
    i32.load offset=24 align=1
    local.set 6
    local.get 2
    i64.const 12
    i64.shr_u
    i32.wrap_i64
    i32.const 255
    i32.and
    i32.const 5
    i32.shl
    local.get 0
    i32.add
    i32.const 256
    i32.add
    local.set 3
    local.get 2
    i64.const -4093
    i64.and
    local.get 3
    i64.load offset=8
    i64.eq
    if ;; label = @1
      local.get 2
      i32.wrap_i64
      local.get 3
      i32.load offset=24
      i32.add
      local.get 6
      local.tee 7
      i32.const 16711935
      i32.and
      i32.const 8
      i32.rotr
      local.get 7
      i32.const 8
      i32.rotl
      i32.const 16711935
      i32.and
      i32.or
      i32.store align=1
    else
      local.get 0
      local.get 2
      local.get 6
      i64.extend_i32_u
      i64.const 242
      i64.const 0
      i64.const 0
      call 1
      drop
      local.get 0
      i32.load
      if ;; label = @2
        local.get 0
        i32.const 0
        i32.store
        local.get 1
        i64.const 1
        i64.store
        i32.const 3
        return
      end
    end
    local.get 1
    i64.const 0
    i64.store
    i32.const 0
    return
    unreachable
  )
)
