import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CheckMethod } from '../../src/domain/model';
import { parseProductCatalog, ProductCatalogError, resolveProduct } from '../../src/suppliers/product-catalog';

const YAML = `
products:
  - outer_iid: HS-ADULT
    supplier: zyb-huangshan
    ticket_type: PST20170001
    scenic_spot: HS-SOUTH
    check_methods: [CODE, QR]
    real_name_required: false
    validity: { kind: days_from_visit, days: 1 }
    expiry_refund: { allowed: true, ratio_bp: 8000 }
  - outer_iid: HS-ADULT
    sub_outer_iid: HS-ADULT-RN
    supplier: zyb-huangshan
    ticket_type: PST20170002
    scenic_spot: HS-SOUTH
    check_methods: [ID_CARD, CODE]
    real_name_required: true
    validity: { kind: fixed, start: 2025-01-01, end: 2025-12-31 }
    expiry_refund: { allowed: false, ratio_bp: 0 }
  - outer_iid: LH-PARK
    supplier: lianhe
    ticket_type: "9001"
    scenic_spot: PARK-1
    check_methods: [QR]
    real_name_required: false
    validity: { kind: days_from_visit, days: 30 }
    expiry_refund: { allowed: true, ratio_bp: 10000 }
`;

function issuesOf(text: string): readonly string[] {
  try {
    parseProductCatalog(text);
  } catch (e) {
    assert.ok(e instanceof ProductCatalogError);
    return e.issues;
  }
  assert.fail('expected the catalog to be refused');
}

describe('product catalog', () => {
  it('parses YAML into typed mappings', () => {
    const c = parseProductCatalog(YAML);
    assert.equal(c.products.length, 3);
    assert.deepEqual(c.products[1], {
      outerIid: 'HS-ADULT',
      subOuterIid: 'HS-ADULT-RN',
      supplierInstance: 'zyb-huangshan',
      supplierTicketType: 'PST20170002',
      scenicSpotCode: 'HS-SOUTH',
      checkMethods: [CheckMethod.IdCard, CheckMethod.Code],
      realNameRequired: true,
      validity: { kind: 'fixed', start: '2025-01-01', end: '2025-12-31' },
      expiryRefund: { allowed: false, ratioBasisPoints: 0 },
    });
  });

  it('parses the same catalog written as JSON', () => {
    const fromYaml = parseProductCatalog(YAML);
    const asJson = JSON.stringify({
      products: fromYaml.products.map((p) => ({
        outer_iid: p.outerIid,
        ...(p.subOuterIid ? { sub_outer_iid: p.subOuterIid } : {}),
        supplier: p.supplierInstance,
        ticket_type: p.supplierTicketType,
        scenic_spot: p.scenicSpotCode,
        check_methods: p.checkMethods,
        real_name_required: p.realNameRequired,
        validity: p.validity,
        expiry_refund: { allowed: p.expiryRefund.allowed, ratio_bp: p.expiryRefund.ratioBasisPoints },
      })),
    });
    assert.deepEqual(parseProductCatalog(asJson), fromYaml);
  });

  it('resolves the SKU code over the item code, falls back to the item, and returns undefined for unknown items', () => {
    const c = parseProductCatalog(YAML);
    assert.equal(resolveProduct(c, 'HS-ADULT', 'HS-ADULT-RN')?.supplierTicketType, 'PST20170002');
    assert.equal(resolveProduct(c, 'HS-ADULT', 'HS-OTHER-SKU')?.supplierTicketType, 'PST20170001');
    assert.equal(resolveProduct(c, 'HS-ADULT', undefined)?.supplierTicketType, 'PST20170001');
    assert.equal(resolveProduct(c, 'SOMETHING', 'LH-PARK')?.supplierTicketType, '9001');
    assert.equal(resolveProduct(c, 'NOPE', undefined), undefined);
    assert.equal(resolveProduct(c, undefined, undefined), undefined);
  });

  it('names the bad entry and the field in every error', () => {
    const bad = YAML.replace('ratio_bp: 8000', 'ratio_bp: 12000').replace('check_methods: [QR]', 'check_methods: [FACE]');
    const issues = issuesOf(bad);
    assert.equal(issues.length, 2);
    assert.match(issues[0]!, /^products\[0\] \(outer_iid=HS-ADULT\): expiry_refund\.ratio_bp: /);
    assert.match(issues[1]!, /^products\[2\] \(outer_iid=LH-PARK\): check_methods\.0: /);
  });

  it('refuses duplicates, ID-card checks without real name, inverted windows, unknown fields and bad dates', () => {
    assert.match(issuesOf(YAML + YAML.replace('products:\n', ''))[0]!, /products\[3\].*duplicates products\[0\]/);
    assert.match(issuesOf(YAML.replace('real_name_required: true', 'real_name_required: false'))[0]!, /products\[1\].*ID_CARD/);
    assert.match(issuesOf(YAML.replace('end: 2025-12-31', 'end: 2024-12-31'))[0]!, /products\[1\].*validity\.end/);
    assert.match(issuesOf(YAML.replace('scenic_spot: PARK-1', 'scenic_spot: PARK-1\n    price: 3'))[0]!, /products\[2\]/);
    assert.match(issuesOf(YAML.replace('start: 2025-01-01', 'start: 2025-02-30'))[0]!, /products\[1\].*validity\.start/);
    assert.match(issuesOf('products: [{}]')[0]!, /products\[0\]/);
  });

  it('refuses text that is not a catalog at all', () => {
    assert.match(issuesOf('products: [')[0]!, /JSON\/YAML/);
    assert.match(issuesOf('[1,2]')[0]!, /products/);
    assert.match(issuesOf('')[0]!, /products/);
  });
});
